"""One chat request -> one plan: everything the rest of the server needs, decided once.

`plan()` is the only place that gives a request's fields their meaning. In order:

1. **Refusals** that need no tokenizer: an unknown model, structured outputs, `n` over
   the limit.
2. **The preset** (models/) fills in what the client left unset: the effort
   level's action (a forced reply prefix, chat-template variables, a system prompt), the
   length prompt (L1: "Think for N tokens.", N = the thinking budget of step 3), the
   recommended instruction, and sampling defaults.
3. **Thinking budget and LYNX.** The maximum comes from `thinkctl.max_thinking_tokens`,
   else vLLM's `thinking_token_budget` (its alias; a conflict is a 400), else the numeric
   `thinkctl.effort`, else `reasoning_effort`, both through the model's effort table
   (server/effort.py; without one, `UNCALIBRATED_BUDGETS`). Where the calibration has a
   length predictor, effort is per query (`query_budget`: the engine sets each query's
   budget from its prompt at prefill) unless `thinkctl.effort_policy` is "global". On a
   server with a probe, an effort maps through the probe's calibrated points to (delta,
   cap, exit floor) instead, unless `thinkctl.lynx` is false, `effort_policy` is named or
   an explicit budget is given; `thinkctl.lynx` (true or options) turns LYNX on by itself.
   Where the effort table holds combined points fitted with the served probe, effort is
   that pair of a LYNX exit and a per-query budget (`_combined`) unless the request
   overrides it.
4. **The prompt**: messages through the model's chat template, with `reasoning_effort`
   and `enable_thinking` as template variables (as vLLM passes them) under the client's
   `chat_template_kwargs`.
5. **Sampling**: vLLM's `SamplingParams` fields, `max_tokens` checked against the limits
   and the room left in the context, logprobs, and the grammar of `response_format`,
   `structured_outputs` or a forced `tool_choice` (vLLM applies it once thinking closed).
6. **The control spec** (control/spec.py) the engine's logits processor runs,
   with token ids resolved (close sequence, wait string, stop ids), or None. With a
   grammar the close has no inducer (the grammar could forbid its text); when
   `max_tokens` would run out inside thinking, the budget closes thinking early enough
   to leave the answer its reserve.
7. **The reply rules** (`Reply`): what the server does to the answer text, which vLLM
   cannot: stop strings matched in the answer only, and tool calls parsed from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from thinkctl.control.phase import Phase, initial_phase
from thinkctl.control.spec import BudgetSpec, ControlSpec, LynxSpec, QuerySpec
from thinkctl.errors import InvalidRequest, NotFound
from thinkctl.models.schema import EffortAction
from thinkctl.probes.effort_table import LEVEL_TABLE, QueryBudget
from thinkctl.server.config import ANSWER_RESERVE, ServerConfig
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    LynxOptions,
    NamedToolChoice,
    ThinkctlOptions,
)
from thinkctl.server.side_probe import SideProbeSpec


@dataclass(frozen=True)
class Reply:
    """What the server does with each choice's output (server/generation.py)."""

    stop: tuple[str, ...] = ()  # stop strings, matched in the answer only
    include_stop: bool = False  # keep the matched stop string in the content
    # Tool calls: "auto" parses them with vLLM's parser; "required" and "named" read the
    # JSON the grammar enforced.
    tools: Literal["none", "auto", "required", "named"] = "none"
    tool_name: str | None = None  # the named function
    tool_defs: list[dict] = field(default_factory=list)
    parallel_tool_calls: bool | None = True
    top_logprobs: int | None = None  # None: no logprobs asked for
    tokens_as_ids: bool = False  # logprob tokens as "token_id:N"


@dataclass(frozen=True)
class Plan:
    prompt_ids: list[int]
    sampling: dict[str, Any]  # keyword arguments of vLLM's SamplingParams
    spec: ControlSpec | None  # None: no controller asked for
    n: int
    reply: Reply = field(default_factory=Reply)
    side: SideProbeSpec | None = None  # DEER / Dynasor trial answers (server/generation.py)
    reserve: Reserve | None = None  # the answer's reserve, for the trace


def plan(req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig) -> Plan:
    _refuse(req, info, config)
    effort = decide_effort(req, config)  # the preset changes none of the fields it reads
    req = apply_preset(req, config, effort)
    prompt_ids = _prompt_ids(req, info, config)
    sampling = _sampling(req, info, config, len(prompt_ids))
    grammar = _grammar(req, info, config)
    if grammar is not None:
        sampling["structured_outputs"] = grammar
    reserve = _reserve(req, info, config, sampling["max_tokens"])
    return Plan(
        prompt_ids=prompt_ids,
        sampling=sampling,
        spec=_control_spec(req, info, prompt_ids, effort, grammar is not None, reserve),
        n=req.n,
        reply=_reply(req),
        side=_side_probe(req, info, grammar is not None),
        reserve=reserve,
    )


# --- 1. refusals ----------------------------------------------------------------------


def _refuse(req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig) -> None:
    if req.model != info.name:
        raise NotFound(f"The model {req.model!r} does not exist.", "model", "model_not_found")
    if req.tool_mode() == "auto" and req.tools and not (config.auto_tool_choice
                                                         and info.tool_parser):  # fmt: skip
        raise InvalidRequest(
            '"auto" tool choice requires the server to be started with '
            "--enable-auto-tool-choice and --tool-call-parser.",
            "tool_choice",
        )
    max_n = config.limits.max_n
    if req.n > max_n:
        raise InvalidRequest(f"n is {req.n}; this server allows at most {max_n}.", "n",
                             "limit_exceeded")  # fmt: skip


# --- 2. the preset ----------------------------------------------------------------------


def apply_preset(
    req: ChatCompletionRequest, config: ServerConfig, effort: EffortDecision | None = None
) -> ChatCompletionRequest:
    """The request with the served model's preset filled in where the client set nothing."""
    preset = config.preset
    if preset is None:
        return req
    entry = preset.entry
    action = entry.action(req.reasoning_effort) or EffortAction()
    effort = effort if effort is not None else decide_effort(req, config)
    update: dict = {"messages": _preset_messages(req, config, action, effort)}
    if action.mode_prefix and not (req.thinkctl and req.thinkctl.mode_prefix):
        opts = req.thinkctl or ThinkctlOptions()
        update["thinkctl"] = opts.model_copy(update={"mode_prefix": action.mode_prefix})
    if action.chat_template_kwargs:
        update["chat_template_kwargs"] = {
            **action.chat_template_kwargs,
            **(req.chat_template_kwargs or {}),
        }
    sampling = action.sampling.over(entry.sampling) if action.sampling else entry.sampling
    for key, value in sampling.model_dump(exclude={"max_tokens"}, exclude_none=True).items():
        if getattr(req, key) is None:
            update[key] = value
    return req.model_copy(update=update)


def sampling_defaults(info: ModelInfo, config: ServerConfig) -> dict[str, Any]:
    """What a request that leaves a sampling field unset gets, before vLLM's neutral
    values: the model folder's generation config (as vLLM reads it), then the preset's."""
    out = dict(info.sampling_defaults)
    if config.preset is not None:
        out |= config.preset.entry.sampling.model_dump(exclude_none=True)
    return out


def _preset_messages(
    req: ChatCompletionRequest, config: ServerConfig, action: EffortAction, effort: EffortDecision
) -> list[ChatMessage]:
    preset = config.preset
    assert preset is not None
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
    lp = entry.length_prompt
    if lp is not None:
        # N is the thinking budget the budget controller enforces, so the model's own
        # mechanism and the stop controllers agree (uncapped: the trained maximum; no
        # effort and no budget named: the entry's default).
        if _names_length(req):
            n = lp.max_tokens if effort.budget is None else effort.budget
        else:
            n = lp.default_tokens
        text = text + lp.separator + lp.render(n)
    messages[last] = messages[last].model_copy(update={"content": text})
    return messages


def _names_length(req: ChatCompletionRequest) -> bool:
    opts = req.thinkctl
    return (
        req.reasoning_effort is not None
        or req.thinking_token_budget not in (None, -1)
        or (opts is not None and (opts.effort is not None or opts.max_thinking_tokens is not None))
    )


# --- 3. thinking budget and LYNX -----------------------------------------------------------


@dataclass(frozen=True)
class _Lynx:
    # The rule: a delta, or a score threshold (certified at max_accuracy_loss when that
    # is set); neither: LYNX's share is only the cap (an effort the probe cannot reach).
    delta: float | None
    cap: int | None
    floor: int
    threshold: float | None = None
    max_accuracy_loss: float | None = None

    @property
    def exits(self) -> bool:
        return self.delta is not None or self.threshold is not None


@dataclass(frozen=True)
class EffortDecision:
    """What a request's budget and effort fields mean on this server, decided once per
    request by `decide_effort`; every budget of the plan comes from it."""

    explicit: int | None  # thinkctl.max_thinking_tokens or thinking_token_budget
    effort: float | None  # numeric effort, or the level's (max: 1.0); None: none named
    budget: int | None  # the maximum thinking budget without LYNX (an L1 prompt's N)
    query: QueryBudget | None = None  # per-query budgets: the engine picks one at prefill
    lynx: _Lynx | None = None  # LYNX's share, or None when LYNX has no say

    @property
    def max_thinking(self) -> int | None:
        """The cap the budget controller enforces (a per-query budget: its largest)."""
        if self.query is not None:
            return max(self.query.budgets)
        if self.lynx is not None:
            return self.lynx.cap
        return self.budget


def decide_effort(req: ChatCompletionRequest, config: ServerConfig) -> EffortDecision:
    """The maximum comes from `thinkctl.max_thinking_tokens`, else `thinking_token_budget`,
    else numeric `thinkctl.effort`, else `reasoning_effort` (one table of levels,
    probes/effort_table.LEVEL_TABLE, under the model's calibration); then LYNX's share
    and the per-query budget."""
    explicit = _explicit_budget(req)
    effort = _effort_fraction(req, config)
    budget = explicit if explicit is not None else _effort_budget(req, config)
    combined = _combined(req, config, explicit, effort)
    if combined is not None:
        return combined
    lynx = _lynx(req, config, explicit, effort, budget)
    query = _query_budget(req, config, lynx is not None, explicit, effort)
    numeric = req.thinkctl is not None and req.thinkctl.effort is not None
    if numeric and lynx is None and not config.effort.calibrated:  # (a probe maps it itself)
        raise InvalidRequest(
            "this model has no effort calibration: numeric effort needs an effort table "
            "(thinkctl calibrate); use reasoning_effort or a thinking budget instead.",
            "thinkctl.effort",
        )
    return EffortDecision(explicit, effort, budget, query, lynx)


def _explicit_budget(req: ChatCompletionRequest) -> int | None:
    """`thinkctl.max_thinking_tokens` or vLLM's `thinking_token_budget` (-1: none)."""
    ours = req.thinkctl.max_thinking_tokens if req.thinkctl else None
    vllms = req.thinking_token_budget if req.thinking_token_budget not in (None, -1) else None
    if ours is not None and vllms is not None and ours != vllms:
        raise InvalidRequest(
            "thinking_token_budget and thinkctl.max_thinking_tokens disagree; send one.",
            "thinking_token_budget",
        )
    return ours if ours is not None else vllms


def _effort_fraction(req: ChatCompletionRequest, config: ServerConfig) -> float | None:
    if req.thinkctl and req.thinkctl.effort is not None:
        return req.thinkctl.effort
    level = req.reasoning_effort
    if level is None:
        return None
    return config.effort.fractions.get(level, LEVEL_TABLE[level].effort)


def level_budgets(config: ServerConfig) -> dict[str, int | None]:
    """reasoning_effort level -> maximum thinking tokens on this server (no probe)."""
    effort = config.effort
    if not effort.calibrated:
        return {k: v.uncalibrated_budget for k, v in LEVEL_TABLE.items()}
    levels: dict[str, int | None] = {k: effort.budget(v) for k, v in effort.fractions.items()}
    levels["max"] = None
    return levels


def _effort_budget(req: ChatCompletionRequest, config: ServerConfig) -> int | None:
    """The global cap of numeric effort or of the level (no explicit budget was given);
    None for numeric effort on a model without an effort table."""
    if req.thinkctl and req.thinkctl.effort is not None:
        return config.effort.budget(req.thinkctl.effort) if config.effort.calibrated else None
    if req.reasoning_effort is not None:
        return level_budgets(config).get(req.reasoning_effort)
    return None


def _prompted(config: ServerConfig) -> bool:
    """Whether the preset's length prompt (L1) states the budget in the prompt, before a
    per-query budget, which the engine sets from the prompt's own features, is known."""
    return config.preset is not None and config.preset.entry.length_prompt is not None


def effort_policy(config: ServerConfig) -> str:
    """What a request's effort goes through on this server by default (`decide_effort`)."""
    probe, effort = config.probe, config.effort
    if probe is not None and not _prompted(config) and effort.combined_for(probe.sha256):
        return "combined"
    if probe is not None:
        return "lynx"
    return "per_query" if effort.per_query else "budget"


def effort_card(config: ServerConfig) -> dict:
    """What /v1/models says effort means on this server: the policy requests get by
    default, and each level's share of it. A level's `max_thinking_tokens` is the cap a
    request naming only that level gets (decided by `decide_effort`, as for a request);
    `global_cap` is the budget table's, which `effort_policy` "global" asks for."""
    effort, policy = config.effort, effort_policy(config)

    def cap(level: str) -> int | None:
        req = ChatCompletionRequest(model=config.model_name, reasoning_effort=level,
                                    messages=[{"role": "user", "content": ""}])  # fmt: skip
        return decide_effort(req, config).max_thinking

    card = {
        "calibrated": effort.calibrated,
        "calibration": effort.source,
        "made_by": effort.made_by,
        "policy": policy,
        "natural_mean_thinking_tokens": effort.natural_mean,
        "levels": {
            k: {"effort": effort.fractions.get(k), "max_thinking_tokens": cap(k), "global_cap": v}
            for k, v in level_budgets(config).items()
        },
    }
    for level in card["levels"].values():
        e = level["effort"]
        if e is None or not 0 < e < 1:
            continue
        if effort.per_query:  # the global cap above stays available as effort_policy "global"
            level["per_query"] = effort.query_budget(e).as_json()
        if policy == "combined":  # what the level does unless a request overrides it
            level["combined"] = effort.combined_point(e).as_json()
        elif policy == "lynx":
            level["lynx"] = config.probe.for_effort(e).model_dump()
    return card


def _query_budget(
    req: ChatCompletionRequest,
    config: ServerConfig,
    lynx: bool,
    explicit: int | None,
    effort: float | None,
) -> QueryBudget | None:
    """Per-query effort: the effort's point when the model's calibration has them and the
    request names no budget and does not ask for the global cap (`effort_policy`). Asked
    for where it cannot be given (no length predictor; effort through LYNX): a 400."""
    policy = req.thinkctl.effort_policy if req.thinkctl else None
    prompted = _prompted(config)
    if policy == "query" and (lynx or prompted or not config.effort.per_query):
        why = ("effort goes through the LYNX probe here; send \"lynx\": false" if lynx
               else "the preset's length prompt names one budget for every query" if prompted
               else "this model's calibration has no length predictor (thinkctl calibrate "
               "makes one)")  # fmt: skip
        raise InvalidRequest(f"effort_policy \"query\" is not available: {why}.",
                             "thinkctl.effort_policy")  # fmt: skip
    if lynx or prompted or not config.effort.per_query or explicit is not None:
        return None
    if policy == "global":
        return None
    if effort is None or not 0 < effort < 1:  # none thinks not at all, max without a cap
        return None
    return config.effort.query_budget(effort)


def _combined(
    req: ChatCompletionRequest, config: ServerConfig, explicit: int | None, effort: float | None
) -> EffortDecision | None:
    """Effort as one policy (probes/effort_table.CombinedPoint): the per-query budget and
    the LYNX exit that the calibration chose together for this effort, when it fitted them
    with the served probe and the request names effort and nothing that overrides it
    (`lynx`, `effort_policy`, a budget, a length prompt; efforts 0 and 1 mean no thinking
    and no control: the probe's table)."""
    if effort_policy(config) != "combined":
        return None
    if explicit is not None or effort is None or not 0 < effort < 1:
        return None
    opts = req.thinkctl
    if opts is not None and (opts.lynx is not None or opts.effort_policy is not None):
        return None
    c = config.effort.combined_point(effort)
    query = None if c.query_effort is None else config.effort.query_budget(c.query_effort)
    lynx = None if c.threshold is None else _Lynx(None, c.cap, 0, c.threshold, c.epsilon)
    return EffortDecision(None, effort, c.cap, query, lynx)


def _lynx(
    req: ChatCompletionRequest,
    config: ServerConfig,
    explicit: int | None,
    effort: float | None,
    budget: int | None,
) -> _Lynx | None:
    """LYNX's share of the request's control, or None when LYNX has no say."""
    asked = req.thinkctl.lynx if req.thinkctl else None
    if asked is False:
        return None
    if asked is None and req.thinkctl is not None and req.thinkctl.effort_policy is not None:
        return None  # the policy names the budget alone: LYNX has no say unless asked
    probe = config.probe
    if probe is None:
        if asked is not None:
            raise InvalidRequest(
                "thinkctl.lynx needs a probe, and this server has none: thinkctl calibrate "
                "writes one where serve finds it, or start serve with --probe DIR.",
                "thinkctl.lynx",
            )
        return None
    opts = asked if isinstance(asked, LynxOptions) else None
    delta = opts.delta if opts else None
    floor = opts.min_thinking_tokens if opts else None
    risk = _risk_threshold(opts, probe)
    if effort is not None and explicit is None:
        point = probe.for_effort(effort)
        cap = point.max_thinking_tokens
        floor = point.min_thinking_tokens if floor is None else floor
        if delta is not None:  # the request's own rule wins; effort gives the cap
            return _Lynx(delta, cap, floor)
        if risk is not None or point.threshold is not None:
            # Both: the safer (higher) threshold. The grid's thresholds above a certified
            # one are certified with it (fixed-sequence testing, calibration/risk.py), so
            # the request's epsilon still holds.
            t = max(x for x in (risk and risk[0], point.threshold) if x is not None)
            return _Lynx(None, cap, floor, t, risk[1] if risk else point.max_accuracy_loss)
        effort_delta = point.delta
        if asked is not None:  # asked for LYNX explicitly: never switched off by effort
            effort_delta = effort_delta or probe.default_delta
        return _Lynx(effort_delta, cap, floor)
    if risk is not None:
        return _Lynx(None, budget, floor or 0, *risk)
    if asked is not None:
        return _Lynx(delta or probe.default_delta, budget, floor or 0)
    return None


def _risk_threshold(opts: LynxOptions | None, probe) -> tuple[float, float] | None:
    """(score threshold, epsilon) for `thinkctl.lynx.max_accuracy_loss`, None if not asked."""
    eps = opts.max_accuracy_loss if opts else None
    if eps is None:
        return None
    param = "thinkctl.lynx.max_accuracy_loss"
    if opts.delta is not None:
        raise InvalidRequest("thinkctl.lynx takes delta or max_accuracy_loss, not both.", param)
    point = probe.for_accuracy_loss(eps)
    if point is None:
        have = [p.epsilon for p in probe.risk]
        raise InvalidRequest(
            f"The probe is calibrated for max_accuracy_loss in {have}; {eps} is below them."
            if have else "The probe has no answer-level risk table; recalibrate it with this "
            "version's thinkctl calibrate.", param,
        )  # fmt: skip
    # No threshold certified: a threshold no score exceeds keeps the request's thinking.
    return (1.0 if point.threshold is None else point.threshold), point.epsilon


# --- 4. the prompt ------------------------------------------------------------------------


def _prompt_ids(req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig) -> list[int]:
    messages: list[dict[str, Any]] = []
    for m in req.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.text()}
        if m.name is not None:
            msg["name"] = m.name
        thought = m.reasoning if m.reasoning is not None else m.reasoning_content
        if thought is not None:
            msg["reasoning_content"] = thought  # the name chat templates (Qwen3) read
        if m.tool_call_id is not None:
            msg["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            # As vLLM does: templates read the arguments as a mapping, not JSON text.
            msg["tool_calls"] = [{"id": c.id, "type": c.type, "function": {
                "name": c.function.name, "arguments": _arguments(c.function.arguments)}}
                for c in m.tool_calls]  # fmt: skip
        messages.append(msg)
    kwargs: dict[str, Any] = {}
    if req.tools:
        kwargs["tools"] = req.tool_dicts()
    if req.reasoning_effort is not None:
        # As vLLM does: templates with a thinking switch (Qwen3) read these.
        kwargs["reasoning_effort"] = req.reasoning_effort
        kwargs["enable_thinking"] = req.reasoning_effort != "none"
    kwargs.update(req.chat_template_kwargs or {})  # the client's (or the preset's) win
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
    most = config.limits.max_prompt_tokens
    if most is not None and len(ids) > most:
        raise InvalidRequest(
            f"The messages take {len(ids)} tokens; this server allows at most {most}.",
            "messages", "limit_exceeded",
        )  # fmt: skip
    return list(ids)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"A tool call's arguments are not JSON: {exc}", "messages") from exc


# --- 5. sampling ----------------------------------------------------------------------


def _sampling(
    req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig, prompt_len: int
) -> dict[str, Any]:
    room = info.max_model_len - prompt_len
    max_tokens = req.max_completion_tokens or req.max_tokens
    param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
    cap = config.limits.max_completion_tokens
    if cap is not None and max_tokens is not None and max_tokens > cap:
        raise InvalidRequest(
            f"{param} is {max_tokens}; this server allows at most {cap}.", param, "limit_exceeded"
        )
    # A preset's default, else the generation config's (max_new_tokens), else the room.
    default = config.default_max_tokens or info.sampling_defaults.get("max_tokens")
    if max_tokens is None and default is not None:
        max_tokens = min(default, cap or room, room)
    if cap is not None and max_tokens is None:
        max_tokens = min(cap, room)
    if max_tokens is not None and max_tokens > room:
        raise InvalidRequest(
            f"This model's maximum context length is {info.max_model_len} tokens; the "
            f"messages take {prompt_len}, leaving {room} for the completion, but {max_tokens} "
            "were requested.",
            param,
            "context_length_exceeded",
        )
    top = req.top_logprobs or 0
    limit = info.max_logprobs
    if req.logprobs and limit != -1 and top > limit:
        raise InvalidRequest(f"top_logprobs is {top}; this server returns at most {limit} "
                             "(--max-logprobs).", "top_logprobs")  # fmt: skip

    def pick(key: str, neutral: float) -> Any:  # the request's, the model's, vLLM's neutral
        value = getattr(req, key)
        return value if value is not None else info.sampling_defaults.get(key, neutral)

    return {
        "max_tokens": max_tokens or room,
        "temperature": pick("temperature", 1.0),
        "top_p": pick("top_p", 1.0),
        "presence_penalty": pick("presence_penalty", 0.0),
        "frequency_penalty": pick("frequency_penalty", 0.0),
        "seed": req.seed,
        "stop": [],  # stop strings are matched in the answer only, by the server (`Reply`)
        "logprobs": top if req.logprobs else None,
        "top_k": pick("top_k", 0),  # 0 or -1: off, as in vLLM
        "min_p": pick("min_p", 0.0),
        "repetition_penalty": pick("repetition_penalty", 1.0),
        "logit_bias": {int(k): v for k, v in req.logit_bias.items()} if req.logit_bias else None,
        "min_tokens": req.min_tokens,
        "stop_token_ids": req.stop_token_ids or None,
        "ignore_eos": req.ignore_eos,
        "skip_special_tokens": _skip_special_tokens(req, info),
        "spaces_between_special_tokens": req.spaces_between_special_tokens,
    }


def _skip_special_tokens(req: ChatCompletionRequest, info: ModelInfo) -> bool:
    """The client's choice, unless the tool parser needs its markers (as in vLLM)."""
    if req.tools and req.tool_mode() == "auto" and info.tool_parser is not None:
        return info.tool_parser.skip_special_tokens(req.tool_dicts(), req.skip_special_tokens)
    return req.skip_special_tokens


def _grammar(
    req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig
) -> dict[str, Any] | None:
    """vLLM's `StructuredOutputsParams` fields for the answer, or None."""
    fmt = req.response_format
    mode = req.tool_mode()
    forced_tool = mode == "required" or isinstance(mode, NamedToolChoice)
    asked = {
        "response_format": fmt is not None and fmt.type != "text",
        "structured_outputs": req.structured_outputs is not None,
        "tool_choice": forced_tool,
    }
    named = [k for k, v in asked.items() if v]
    if not named:
        return None
    if len(named) > 1:
        raise InvalidRequest(f"{' and '.join(named)} each set a grammar; send one.", named[1])
    if info.think.thinks and not config.grammar_after_thinking:
        raise InvalidRequest(
            "Structured outputs on this model need the server started with "
            "--reasoning-parser, so that the grammar applies after thinking.",
            named[0],
        )
    if forced_tool:
        from thinkctl.engine.tools import forced_schema  # vLLM's own schema for forced tool calls

        mode_dump = mode.model_dump() if isinstance(mode, NamedToolChoice) else mode
        return {"json": forced_schema(req.tool_dicts(), mode_dump, req.parallel_tool_calls)}
    if req.structured_outputs is not None:
        return dict(req.structured_outputs)
    assert fmt is not None
    if fmt.type == "json_object":
        return {"json_object": True}
    assert fmt.json_schema is not None
    return {"json": fmt.json_schema.schema_}


class Reserve(NamedTuple):
    tokens: int  # kept for the answer
    of: int  # the request's max_tokens, whoever set it
    source: str  # who sized it: "request", "flag", "calibration" or "default"


class ReserveSize(NamedTuple):
    tokens: int
    source: str


def answer_reserve(config: ServerConfig) -> ReserveSize:
    """The answer reserve's largest size and who set it: --answer-reserve, else the
    model's calibration (probes/effort_table.answer_reserve), else ANSWER_RESERVE."""
    if config.answer_reserve is not None:
        return ReserveSize(config.answer_reserve, "flag")
    if config.effort.answer_reserve is not None:
        return ReserveSize(config.effort.answer_reserve, "calibration")
    return ReserveSize(ANSWER_RESERVE, "default")


def _reserve(
    req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig, max_tokens: int
) -> Reserve | None:
    """Tokens kept for the answer when max_tokens would run out inside thinking, whoever
    set max_tokens (the request, the preset, the generation config, --max-completion-tokens):
    the request's `thinkctl.answer_reserve`, else a quarter of max_tokens, at most
    `answer_reserve(config)`. None where nothing set a length (only the context ends it) or
    the reserve is 0."""
    asked = req.thinkctl.answer_reserve if req.thinkctl else None
    named = (req.max_tokens or req.max_completion_tokens or config.default_max_tokens
             or info.sampling_defaults.get("max_tokens")
             or config.limits.max_completion_tokens)  # fmt: skip
    if asked is not None:
        return Reserve(asked, max_tokens, "request") if asked and named else None
    most, source = answer_reserve(config)
    if not (most and named):
        return None
    return Reserve(min(most, max_tokens // 4), max_tokens, source)


# --- 6. the control spec -----------------------------------------------------------------


def _control_spec(
    req: ChatCompletionRequest,
    info: ModelInfo,
    prompt_ids: list[int],
    effort: EffortDecision,
    grammar: bool = False,
    reserve: Reserve | None = None,
) -> ControlSpec | None:
    max_think, lynx, query = effort.max_thinking, effort.lynx, effort.query
    opts = req.thinkctl or ThinkctlOptions()
    min_think = opts.min_thinking_tokens or 0
    if max_think is not None and min_think > max_think:
        raise InvalidRequest(
            f"thinkctl.min_thinking_tokens ({min_think}) exceeds the maximum thinking budget "
            f"({max_think}).",
            "thinkctl.min_thinking_tokens",
        )
    lynx_exits = lynx is not None and lynx.exits
    asked = max_think is not None or min_think > 0 or lynx_exits or query is not None
    if not (asked or opts.ts or opts.top_h or opts.mode_prefix or reserve is not None):
        return None
    think = info.think
    if not asked and not (opts.ts or opts.top_h or opts.mode_prefix) and not think.thinks:
        return None  # only the answer reserve, on a model that does not think: moot
    if not think.thinks:
        if req.reasoning_effort is not None and req.thinkctl is None:
            if req.thinking_token_budget is None:
                return None  # effort is a hint; on a model that does not think it is moot
        conv = think.conventions
        raise InvalidRequest(
            f"Model {info.name!r} has no single-token think delimiters "
            f"({conv.think_start!r}/{conv.think_end!r}); thinkctl's controls need them.",
            "thinkctl",
        )
    mode = think.encode(opts.mode_prefix) if opts.mode_prefix else None
    if grammar:
        _grammar_fits(req, info, prompt_ids, mode)
    # The request's inducer may be "" (a bare close); under a grammar there is none.
    close = think.close("" if grammar else opts.answer_inducer)
    room = _room_to_think(req, info, prompt_ids, reserve, close, mode)
    reserved = room is not None and (max_think is None or room < max_think)
    if reserved:
        max_think = max(room, min_think)  # an explicit minimum still holds
        if query is not None:  # the per-query budget stays within the room too
            query = dataclasses.replace(query, budgets=tuple(min(b, max_think)
                                                             for b in query.budgets))  # fmt: skip
    budget = None
    if max_think is not None or min_think > 0 or query is not None:
        budget = BudgetSpec(
            max=max_think,
            query=QuerySpec(**query.as_json()) if query is not None else None,
            min=min_think,
            close=close,
            wait=think.wait(opts.wait_string),
            stop=sorted({think.require_end(), *think.eos}),
            reason="answer_reserve" if reserved else "budget",
        )
    if budget is None and not (opts.ts or opts.top_h or mode or lynx_exits):
        return None
    return ControlSpec(
        think=(think.start, think.end),
        mode=mode,
        budget=budget,
        ts=opts.ts,
        top_h=opts.top_h,
        lynx=LynxSpec(
            delta=lynx.delta,
            threshold=lynx.threshold,
            close=close,
            max_accuracy_loss=lynx.max_accuracy_loss,
            min_thinking=lynx.floor,
        )
        if lynx is not None and lynx.exits
        else None,
    )


def _side_probe(req: ChatCompletionRequest, info: ModelInfo, grammar: bool) -> SideProbeSpec | None:
    """DEER and Dynasor's rules, or None. Their exit restarts generation from the trial's
    prefix (server/generation.py), where neither logprobs of the forced close nor a
    grammar's state would carry over: those combinations are refused."""
    opts = req.thinkctl
    if opts is None or (opts.deer is None and opts.dynasor is None):
        return None
    param = "thinkctl.deer" if opts.deer is not None else "thinkctl.dynasor"
    if not info.think.thinks:
        raise InvalidRequest(f"{param} needs a model with think delimiters.", param)
    for asked, field_name in ((req.logprobs, "logprobs"), (grammar, "a grammar")):
        if asked:
            raise InvalidRequest(f"{param} cannot be combined with {field_name}: an exit "
                                 "restarts the answer from the trial's prefix.", param)  # fmt: skip
    inducer = opts.answer_inducer  # None: the model's own
    deer, dyn = opts.deer, opts.dynasor
    return SideProbeSpec(
        close=tuple(info.think.close(inducer)),
        inducer=info.think.conventions.answer_inducer if inducer is None else inducer,
        answer_tokens=max(o.answer_tokens for o in (deer, dyn) if o is not None),
        cue_ids=info.cue_ids if deer is not None else frozenset(),
        threshold=deer.threshold if deer is not None else None,
        confidence=deer.confidence if deer is not None else "mean",
        every=dyn.every if dyn is not None else None,
        agree=dyn.agree if dyn is not None else None,
        min_thinking=opts.min_thinking_tokens or 0,
    )


# --- 7. the reply rules ----------------------------------------------------------------


def _reply(req: ChatCompletionRequest) -> Reply:
    mode = req.tool_mode()
    named = isinstance(mode, NamedToolChoice)
    return Reply(
        stop=tuple(req.stop_list()),
        include_stop=req.include_stop_str_in_output,
        tools="named" if named else mode,  # type: ignore[arg-type]
        tool_name=mode.function.name if isinstance(mode, NamedToolChoice) else None,
        tool_defs=req.tool_dicts(),
        parallel_tool_calls=req.parallel_tool_calls,
        top_logprobs=(req.top_logprobs or 0) if req.logprobs else None,
        tokens_as_ids=bool(req.return_tokens_as_token_ids),
    )


def _grammar_fits(
    req: ChatCompletionRequest, info: ModelInfo, prompt_ids: list[int], mode: list[int] | None
) -> None:
    """Forced text must not meet an active grammar (it could forbid every forced token)."""
    opts = req.thinkctl or ThinkctlOptions()
    if opts.answer_inducer:
        raise InvalidRequest(
            "thinkctl.answer_inducer cannot be combined with structured outputs: the grammar "
            "decides the answer's text.",
            "thinkctl.answer_inducer",
        )
    think = info.think
    last = [t for t in prompt_ids if t in (think.start, think.end)][-1:]
    if mode and last == [think.end]:  # vLLM's reasoning parser: thinking already ended
        raise InvalidRequest(
            "thinkctl.mode_prefix cannot be combined with structured outputs when the reply "
            "starts in the answer: the grammar could forbid the prefix.",
            "thinkctl.mode_prefix",
        )


def _room_to_think(
    req: ChatCompletionRequest,
    info: ModelInfo,
    prompt_ids: list[int],
    reserve: Reserve | None,
    close: list[int],
    mode: list[int] | None,
) -> int | None:
    """The most thinking that still leaves `reserve` tokens of max_tokens for the answer:
    max_tokens less the reserve, the close sequence, a forced prefix, and the start token
    when the reply must open thinking itself."""
    if reserve is None:
        return None
    delims = info.delims
    opens = delims is not None and initial_phase(prompt_ids, delims) is Phase.BEFORE
    return max(0, reserve.of - reserve.tokens - len(close) - len(mode or ()) - int(opens))
