"""Budget forcing (s1, arXiv 2501.19393): a maximum and a minimum thinking length.

- Maximum: when the thinking block reaches `max_thinking` tokens, force the end-of-
  thinking token followed by an answer inducer ("Final Answer:"), so the model answers
  instead of being cut off mid-thought (s1 reports that a bare cut lets the model keep
  reasoning inside the answer).
- Minimum: below `min_thinking`, the end-of-thinking token and EOS are banned; when one
  of them would have been the model's top choice, "Wait" is injected instead, as s1's
  "ignore end of thinking" does.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinkctl.control.base import LEAVE, Action, StepView
from thinkctl.control.phase import Phase
from thinkctl.probes.effort_table import QueryBudget


@dataclass(frozen=True)
class BudgetParams:
    max_thinking: int | None = None
    min_thinking: int = 0
    close: tuple[int, ...] = ()  # end-of-thinking id, then the answer inducer's ids
    wait: tuple[int, ...] = ()  # ids injected when the model tries to stop below the minimum
    stop_ids: frozenset[int] = frozenset()  # end-of-thinking and EOS ids
    reason: str = "budget"  # the trace's name for a close at the maximum
    # Per-query effort: the maximum is set from the prompt's predicted length at prefill
    # (control/batch.py); `max_thinking` is its cap until then.
    query: QueryBudget | None = None

    def __post_init__(self) -> None:
        if self.max_thinking is not None and self.max_thinking < 0:
            raise ValueError("max_thinking must be >= 0")
        if self.min_thinking < 0:
            raise ValueError("min_thinking must be >= 0")
        if self.max_thinking is not None and self.min_thinking > self.max_thinking:
            raise ValueError("min_thinking must not exceed max_thinking")
        if self.max_thinking is not None and not self.close:
            raise ValueError("a maximum needs the closing token ids")


class BudgetController:
    name = "budget"

    def __init__(self, params: BudgetParams) -> None:
        self.params = params

    def decide(self, view: StepView) -> Action:
        p = self.params
        if view.phase is not Phase.THINKING:
            return LEAVE
        if p.max_thinking is not None and view.thinking_tokens >= p.max_thinking:
            return Action(force=p.close, reason=p.reason)
        if view.thinking_tokens < p.min_thinking and p.stop_ids:
            # Injecting "Wait" must not carry thinking past the maximum.
            room = p.max_thinking is None or view.thinking_tokens + len(p.wait) <= p.max_thinking
            if p.wait and room and int(view.logits.argmax()) in p.stop_ids:
                return Action(force=p.wait, reason="budget_min")
            return Action(ban=p.stop_ids)
        return LEAVE
