"""LYNX (arXiv 2512.05325): exit thinking at a cue word when a probe on the hidden state,
wrapped in split conformal prediction, is confident that answering now is right.

At the decode step that processes a cue token inside thinking, the probe scores the
cue's features (p = P(a forced exit here answers right)); the conformal thresholds for
the request's delta decide: exit when the prediction set is {1} (probes/conformal.py).
A request may instead carry a threshold on the score, chosen for an answer-level risk
(calibration/risk.py): the same rule with q1 = 1.
The exit forces the end-of-thinking token and the answer inducer, as budget forcing
does. Every scored cue is reported (reason "probe"), so the trace shows the cue index
and score of each decision and the step of the exit. Cues before a floor of
`min_thinking` tokens (high efforts, to think longer than the safest delta alone) are
not scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thinkctl.control.base import LEAVE, Action, StepView
from thinkctl.control.phase import Phase

# features -> P(exiting here answers right)
Scorer = Callable[[torch.Tensor], float]


@dataclass(frozen=True)
class LynxParams:
    cue_ids: frozenset[int]
    close: tuple[int, ...]  # end-of-thinking id, then the answer inducer's ids
    rule: tuple[tuple[str, float], ...]  # as the trace reports it: (("delta", d),), ...
    q0: float  # exit when p > q0 and 1 - p <= q1
    q1: float
    min_thinking: int = 0  # cues before thinking holds this many tokens are not scored

    def __post_init__(self) -> None:
        if not self.close:
            raise ValueError("an exit needs the closing token ids")
        if not self.rule:
            raise ValueError("an exit needs a rule")
        if self.min_thinking < 0:
            raise ValueError("min_thinking must be >= 0")

    def exits(self, p: float) -> bool:
        return bool(exits(p, self.q0, self.q1))


def exits(p, q0, q1):
    """Prediction set {1}: class 1 plausible, class 0 excluded (floats or arrays)."""
    return (1 - p <= q1) & (p > q0)


def detail(rule: tuple, min_thinking: int, cue_index: int, score: float, latency_s: float):
    """What the trace reports of a scored cue: (name, value) pairs."""
    out = (("cue_index", cue_index), ("score", round(score, 6)), *rule, ("latency_s", latency_s))
    return out + (("min_thinking", min_thinking),) if min_thinking else out


class LynxController:
    name = "lynx"

    def __init__(self, params: LynxParams, scorer: Scorer) -> None:
        self.params = params
        self.scorer = scorer
        self.cues = 0  # cues met inside thinking at the steps that processed them
        self.last_cue_at = -1

    def decide(self, view: StepView) -> Action:
        p = self.params
        if view.phase is not Phase.THINKING or view.hidden is None:
            return LEAVE
        if view.last_token not in p.cue_ids:
            return LEAVE
        cue_index = self.count_cue(view.n_output - 1)
        if view.thinking_tokens < p.min_thinking:  # the cue counted, the probe not run
            return LEAVE
        t0 = time.perf_counter()
        score = float(self.scorer(view.hidden()))
        info = detail(p.rule, p.min_thinking, cue_index, score, time.perf_counter() - t0)
        if p.exits(score):
            return Action(force=p.close, reason="lynx", detail=info)
        return Action(reason="probe", detail=info, note=True)

    def count_cue(self, at: int) -> int:
        """The index of the cue at output position `at` (counted once)."""
        if at != self.last_cue_at:
            self.last_cue_at, self.cues = at, self.cues + 1
        return self.cues - 1
