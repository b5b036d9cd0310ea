"""Chat messages -> prompt token ids, through the model's own chat template."""

from __future__ import annotations

from typing import Any

from server.errors import InvalidRequest
from server.model_info import ModelInfo
from server.protocol import ChatCompletionRequest


def render_prompt(req: ChatCompletionRequest, info: ModelInfo) -> list[int]:
    messages: list[dict[str, Any]] = []
    for m in req.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.text()}
        if m.name is not None:
            msg["name"] = m.name
        thought = m.reasoning if m.reasoning is not None else m.reasoning_content
        if thought is not None:
            msg["reasoning_content"] = thought  # the name chat templates (Qwen3) read
        messages.append(msg)
    kwargs: dict[str, Any] = {}
    if req.reasoning_effort is not None:
        # As vLLM does: templates with a thinking switch (Qwen3) read these.
        kwargs["reasoning_effort"] = req.reasoning_effort
        kwargs["enable_thinking"] = req.reasoning_effort != "none"
    kwargs.update(req.chat_template_kwargs or {})  # the client's (or a preset's) win
    try:
        ids = info.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs
        )
    except Exception as exc:  # jinja raises for conversations the template refuses
        raise InvalidRequest(f"The chat template rejected the messages: {exc}", "messages") from exc
    if len(ids) >= info.max_model_len:
        raise InvalidRequest(
            f"This model's maximum context length is {info.max_model_len} tokens, but the "
            f"messages take {len(ids)} tokens.",
            "messages",
            "context_length_exceeded",
        )
    return list(ids)
