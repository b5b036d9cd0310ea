"""Request fields -> the control spec the engine's logits processor runs.

Sources of a maximum thinking budget, in order of precedence (a conflict is a 400):
`thinkctl.max_thinking_tokens`, vLLM's `thinking_token_budget` (its alias), then
`reasoning_effort` through the server's effort table.
"""

from __future__ import annotations

from server.config import ServerConfig
from server.controllers.spec import BudgetSpec, ControlSpec
from server.errors import InvalidRequest
from server.model_info import ModelInfo
from server.protocol import ChatCompletionRequest


def _max_budget(req: ChatCompletionRequest, config: ServerConfig) -> int | None:
    ours = req.thinkctl.max_thinking_tokens if req.thinkctl else None
    vllms = req.thinking_token_budget if req.thinking_token_budget not in (None, -1) else None
    if ours is not None and vllms is not None and ours != vllms:
        raise InvalidRequest(
            "thinking_token_budget and thinkctl.max_thinking_tokens disagree; send one.",
            "thinking_token_budget",
        )
    if ours is not None or vllms is not None:
        return ours if ours is not None else vllms
    if req.reasoning_effort is not None:
        return config.effort_budgets.get(req.reasoning_effort)
    return None


def resolve_control(
    req: ChatCompletionRequest, info: ModelInfo, config: ServerConfig
) -> ControlSpec | None:
    """The spec for this request, or None when no controller is asked for."""
    opts = req.thinkctl
    max_think = _max_budget(req, config)
    min_think = (opts.min_thinking_tokens if opts else None) or 0
    if max_think is not None and min_think > max_think:
        raise InvalidRequest(
            f"thinkctl.min_thinking_tokens ({min_think}) exceeds the maximum thinking budget "
            f"({max_think}).",
            "thinkctl.min_thinking_tokens",
        )
    if max_think is None and not min_think:
        return None
    if info.delims is None:
        if req.reasoning_effort is not None and opts is None and req.thinking_token_budget is None:
            return None  # effort is a hint; on a model that does not think it is moot
        raise InvalidRequest(
            f"Model {info.name!r} has no single-token think delimiters "
            f"({config.think_start!r}/{config.think_end!r}); thinking budgets need them.",
            "thinkctl",
        )
    inducer = (
        opts.answer_inducer if opts and opts.answer_inducer is not None else config.answer_inducer
    )
    wait = opts.wait_string if opts and opts.wait_string is not None else config.wait_string
    end = info.delims.end
    budget = BudgetSpec(
        max=max_think,
        min=min_think,
        close=[end, *info.encode(inducer)],
        wait=info.encode(wait),
        stop=sorted({end, *info.eos_ids}),
    )
    return ControlSpec(think=(info.delims.start, end), budget=budget)
