"""Request fields -> the control spec the engine's logits processor runs.

Sources of a maximum thinking budget, in order of precedence (a conflict is a 400):
`thinkctl.max_thinking_tokens`, vLLM's `thinking_token_budget` (its alias), then the
numeric `thinkctl.effort`, then `reasoning_effort`, both through the model's effort map
(server/effort.py). `thinkctl.ts` and `thinkctl.top_h`
add those controllers; all of them compose in one request.

LYNX: `thinkctl.lynx` (true or {delta}) turns it on; on a server with a probe, an effort
(numeric or `reasoning_effort`) maps through the probe's calibrated effort map to a delta
a cap and an exit floor instead of the budget table, unless `thinkctl.lynx` is false or an
explicit thinking budget is given.
"""

from __future__ import annotations

from probes.effort_table import LEVELS
from server.config import ServerConfig
from server.controllers.spec import BudgetSpec, ControlSpec, LynxSpec, TopHSpec, TSSpec
from server.errors import InvalidRequest
from server.model_info import ModelInfo
from server.protocol import ChatCompletionRequest, LynxOptions

_UNSET = object()


def _explicit_budget(req: ChatCompletionRequest) -> bool:
    ours = req.thinkctl.max_thinking_tokens if req.thinkctl else None
    return ours is not None or req.thinking_token_budget not in (None, -1)


def _effort_fraction(req: ChatCompletionRequest, config: ServerConfig) -> float | None:
    if req.thinkctl and req.thinkctl.effort is not None:
        return req.thinkctl.effort
    level = req.reasoning_effort
    if level is None:
        return None
    if level == "max":
        return 1.0
    return config.effort.fractions.get(level, LEVELS.get(level))


def _lynx_plan(req: ChatCompletionRequest, config: ServerConfig):
    """(delta or None, cap or _UNSET, exit floor): LYNX's share of the request's control."""
    asked = req.thinkctl.lynx if req.thinkctl else None
    if asked is False:
        return None, _UNSET, 0
    probe = config.probe
    if asked is not None and probe is None:
        raise InvalidRequest(
            "thinkctl.lynx needs a server started with --probe DIR (thinkctl calibrate makes one).",
            "thinkctl.lynx",
        )
    if probe is None:
        return None, _UNSET, 0
    opts = asked if isinstance(asked, LynxOptions) else None
    delta = opts.delta if opts else None
    floor = opts.min_thinking_tokens if opts else None
    effort = _effort_fraction(req, config)
    if effort is not None and not _explicit_budget(req):
        point = probe.for_effort(effort)
        effort_delta = point.delta
        if asked is not None:  # asked for LYNX explicitly: never switched off by effort
            effort_delta = effort_delta or probe.default_delta
        if floor is None:
            floor = point.min_thinking_tokens
        return delta or effort_delta, point.max_thinking_tokens, floor
    if asked is not None:
        return delta or probe.default_delta, _UNSET, floor or 0
    return None, _UNSET, 0


def max_thinking_budget(req: ChatCompletionRequest, config: ServerConfig) -> int | None:
    """The thinking budget: the request's field or vLLM's (they must agree), else effort's."""
    ours = req.thinkctl.max_thinking_tokens if req.thinkctl else None
    vllms = req.thinking_token_budget if req.thinking_token_budget not in (None, -1) else None
    if ours is not None and vllms is not None and ours != vllms:
        raise InvalidRequest(
            "thinking_token_budget and thinkctl.max_thinking_tokens disagree; send one.",
            "thinking_token_budget",
        )
    if ours is not None or vllms is not None:
        return ours if ours is not None else vllms
    effort = req.thinkctl.effort if req.thinkctl else None
    if effort is not None:
        try:
            return config.effort.budget(effort)
        except ValueError as exc:
            raise InvalidRequest(
                f"{exc}: numeric effort needs an effort table (python -m calibration.effort); "
                "use reasoning_effort or a thinking budget instead.",
                "thinkctl.effort",
            ) from exc
    if req.reasoning_effort is not None:
        return config.effort.levels.get(req.reasoning_effort)
    return None


def resolve_control(
    req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig
) -> ControlSpec | None:
    """The spec for this request, or None when no controller is asked for."""
    opts = req.thinkctl
    lynx_delta, lynx_cap, lynx_floor = _lynx_plan(req, config)
    max_think = max_thinking_budget(req, config) if lynx_cap is _UNSET else lynx_cap
    min_think = (opts.min_thinking_tokens if opts else None) or 0
    if max_think is not None and min_think > max_think:
        raise InvalidRequest(
            f"thinkctl.min_thinking_tokens ({min_think}) exceeds the maximum thinking budget "
            f"({max_think}).",
            "thinkctl.min_thinking_tokens",
        )
    wants_budget = max_think is not None or min_think > 0
    ts = TSSpec(**opts.ts.model_dump()) if opts and opts.ts else None
    top_h = TopHSpec(**opts.top_h.model_dump()) if opts and opts.top_h else None
    mode = info.encode(opts.mode_prefix) if opts and opts.mode_prefix else None
    if not (wants_budget or ts or top_h or mode or lynx_delta):
        return None
    if info.delims is None:
        if req.reasoning_effort is not None and opts is None and req.thinking_token_budget is None:
            return None  # effort is a hint; on a model that does not think it is moot
        raise InvalidRequest(
            f"Model {info.name!r} has no single-token think delimiters "
            f"({config.think_start!r}/{config.think_end!r}); thinkctl's controls need them.",
            "thinkctl",
        )
    end = info.delims.end
    inducer = config.answer_inducer
    if opts and opts.answer_inducer is not None:
        inducer = opts.answer_inducer  # may be "" for a bare close
    close = [end, *info.encode(inducer)]
    budget = None
    if wants_budget:
        wait = config.wait_string
        if opts and opts.wait_string is not None:
            wait = opts.wait_string
        budget = BudgetSpec(
            max=max_think,
            min=min_think,
            close=close,
            wait=info.encode(wait),
            stop=sorted({end, *info.eos_ids}),
        )
    lynx = LynxSpec(delta=lynx_delta, close=close, min_thinking=lynx_floor) if lynx_delta else None
    return ControlSpec(
        think=(info.delims.start, end), mode=mode, budget=budget, ts=ts, top_h=top_h, lynx=lynx
    )
