"""Mode forcing: make the reply start with a given token sequence.

Hybrid and concise models are switched by their first tokens: Thinkless reads `<short>`
or `<think>`, AdaptThink-style no-think starts with the end of thinking, and any model
can be made to skip an open thinking block by starting with `</think>`. The prefix is
forced at the first output positions, before any other controller is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from thinkctl.control.base import LEAVE, Action, StepView


@dataclass(frozen=True)
class ModeParams:
    prefix: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError("a mode prefix needs at least one token")


class ModeController:
    name = "mode"

    def __init__(self, params: ModeParams) -> None:
        self.params = params

    def decide(self, view: StepView) -> Action:
        if view.n_output == 0:
            return Action(force=self.params.prefix, reason="mode")
        return LEAVE
