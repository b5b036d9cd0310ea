"""Request -> request with the served model's preset applied.

The preset only fills in what the client left unset, so an explicit field always wins:

1. the effort level's action (reasoning_effort; none named: the entry's default action):
   `mode_prefix` -> thinkctl.mode_prefix (forced first tokens: Thinkless <short>/<think>,
   AdaptThink's </think>), `chat_template_kwargs` (Qwen3's enable_thinking; the client's
   own keys win), `system_prompt` (added when the conversation has no system message);
2. the length prompt (L1): "Think for N tokens." after the last user message, where N is
   the request's thinking budget (the same one the budget controller enforces, so the
   model's own mechanism and the stop controllers agree), clamped to the trained range;
3. the recommended instruction (prefix or suffix of the last user message, once);
4. sampling: temperature and top_p where the request sets none (the action's, else the
   entry's). The entry's max_tokens is a server default (ServerConfig.default_max_tokens).
"""

from __future__ import annotations

from server.catalog.preset import Preset
from server.catalog.schema import CatalogEntry, EffortAction
from server.config import ServerConfig
from server.control import max_thinking_budget  # one definition of a request's thinking budget
from server.protocol import ChatCompletionRequest, ChatMessage, ThinkctlOptions


def apply_preset(req: ChatCompletionRequest, config: ServerConfig) -> ChatCompletionRequest:
    preset = config.preset
    if preset is None:
        return req
    entry = preset.entry
    action = entry.action(req.reasoning_effort) or EffortAction()
    update: dict = {"messages": _messages(req, config, preset, action)}
    if action.mode_prefix and not (req.thinkctl and req.thinkctl.mode_prefix):
        opts = req.thinkctl or ThinkctlOptions()
        update["thinkctl"] = opts.model_copy(update={"mode_prefix": action.mode_prefix})
    if action.chat_template_kwargs:
        update["chat_template_kwargs"] = {
            **action.chat_template_kwargs,
            **(req.chat_template_kwargs or {}),
        }
    sampling = action.sampling.over(entry.sampling) if action.sampling else entry.sampling
    if req.temperature is None and sampling.temperature is not None:
        update["temperature"] = sampling.temperature
    if req.top_p is None and sampling.top_p is not None:
        update["top_p"] = sampling.top_p
    return req.model_copy(update=update)


def length_tokens(req: ChatCompletionRequest, config: ServerConfig, entry: CatalogEntry) -> int:
    """N for a length-prompt model: the request's thinking budget (uncapped: the trained
    maximum; no effort and no budget named: the entry's default)."""
    lp = entry.length_prompt
    assert lp is not None
    opts = req.thinkctl
    named = (
        req.reasoning_effort is not None
        or req.thinking_token_budget not in (None, -1)
        or (opts is not None and (opts.effort is not None or opts.max_thinking_tokens is not None))
    )
    if not named:
        return lp.default_tokens
    budget = max_thinking_budget(req, config)
    return lp.max_tokens if budget is None else budget


def _messages(
    req: ChatCompletionRequest, config: ServerConfig, preset: Preset, action: EffortAction
) -> list[ChatMessage]:
    entry = preset.entry
    messages = list(req.messages)
    if action.system_prompt and not any(m.role in ("system", "developer") for m in messages):
        messages.insert(0, ChatMessage(role="system", content=action.system_prompt))
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        return messages
    text = messages[last].text()
    ins = entry.instruction if preset.instruction else None
    if ins is not None and ins.text not in text:  # once, even if the client already added it
        parts = [ins.text, text] if ins.placement == "prefix" else [text, ins.text]
        text = ins.separator.join(parts)
    if entry.length_prompt is not None:
        n = length_tokens(req, config, entry)
        text = text + entry.length_prompt.separator + entry.length_prompt.render(n)
    messages[last] = messages[last].model_copy(update={"content": text})
    return messages
