"""TS: scale the end-of-thinking token's probability while thinking (arXiv 2505.07961).

The paper's exact equation is not public in our sources, so two forms are offered:
- `log_odds` (default): z_end += log(s). Invariant to the logits' offset, and it moves
  only the end token's odds: p' = s·p / (1 − p + s·p). s > 1 stops earlier, s < 1 later.
- `temperature`: z_end / T, the literal "temperature on one token". It depends on the
  logit's sign and offset (with z_end < 0, T < 1 *lowers* p), which is why it is not the
  default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from thinkctl.control.base import LEAVE, Action, StepView
from thinkctl.control.phase import Phase


@dataclass(frozen=True)
class TSParams:
    end_id: int
    strength: float  # s for log_odds, T for temperature; 1 leaves the model alone
    form: Literal["log_odds", "temperature"] = "log_odds"

    def __post_init__(self) -> None:
        if not self.strength > 0 or math.isinf(self.strength):
            raise ValueError("TS strength must be a positive finite number")


class TSController:
    name = "ts"

    def __init__(self, params: TSParams) -> None:
        self.params = params
        # log_odds shifts by the same amount at every step: one Action, built once.
        self._log_odds = Action(shift=((params.end_id, math.log(params.strength)),), reason="ts")

    def decide(self, view: StepView) -> Action:
        p = self.params
        if view.phase is not Phase.THINKING or p.strength == 1:
            return LEAVE
        if p.form == "log_odds":
            return self._log_odds
        z = float(view.logits[p.end_id])
        return Action(shift=((p.end_id, z / p.strength - z),), reason="ts")
