"""Label-conditional (Mondrian) split conformal prediction for exit decisions.

Classes: y = 1 when a forced exit at the cue answers correctly, y = 0 when it would not.
Nonconformity of class c: s_c(x) = 1 - p(c | x), with p = p(1 | x) from the probe.
On a calibration set disjoint from the probe's training set, per class c with n_c
events, q_c(delta) is the k-th smallest s_c, k = ceil((n_c + 1)(1 - delta)). When
k > n_c the set cannot exclude c at that delta: q_c = +inf.

Prediction set S(x) = {1 if 1 - p <= q_1} | {0 if p <= q_0}; thinking exits at the
first cue where S(x) = {1}.

Cluster-aware class 0: the events of one question (its samples, its cues) are alike, so
events are not exchangeable one by one; questions are. Each class-0 calibration event is
therefore scored by the highest class-0 score of its question, and q_0 is the conformal
quantile of those scores, events weighted as they come. A class-0 cue exits only when its
question's highest class-0 score clears q_0, so its exit rate is at most the rate at which
that happens, which this quantile holds to delta (exactly for exchangeable events, and
conservatively across questions: the report's re-splits measure it). It says nothing per
trajectory beyond that, and nothing for another question distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def quantile(scores: np.ndarray, delta: float) -> float:
    """q(delta): the ceil((n+1)(1-delta))-th smallest score, +inf when that exceeds n."""
    if not 0 < delta < 1:
        raise ValueError("delta must lie in (0, 1)")
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil((len(s) + 1) * (1 - delta) - 1e-12)
    return float(s[k - 1]) if 1 <= k <= len(s) else math.inf


@dataclass(frozen=True)
class Thresholds:
    delta: float
    q0: float
    q1: float

    def prediction_set(self, p: float) -> frozenset[int]:
        out = set()
        if 1 - p <= self.q1:
            out.add(1)
        if p <= self.q0:
            out.add(0)
        return frozenset(out)

    def exits(self, p: float) -> bool:
        """S(x) == {1}: class 1 is plausible and class 0 is excluded."""
        return 1 - p <= self.q1 and p > self.q0

    def exits_many(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return (1 - p <= self.q1) & (p > self.q0)


@dataclass(frozen=True)
class Calibration:
    """The calibration set's nonconformity scores, per class (kept, so any delta works)."""

    scores0: np.ndarray  # s_0 = 1 - p(0|x) = p, over class-0 events
    scores1: np.ndarray  # s_1 = 1 - p, over class-1 events

    @classmethod
    def from_probs(cls, p: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
                   ) -> Calibration:  # fmt: skip
        """From calibration events' scores and labels; with `groups` (each event's
        question), each class-0 event is scored by its question's highest class-0 score."""
        p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=int)
        s0 = p[y == 0]
        if groups is not None and len(s0):
            g = np.asarray(groups)[y == 0]
            qs, inverse = np.unique(g, return_inverse=True)
            top = np.full(len(qs), -np.inf)
            np.maximum.at(top, inverse, s0)
            s0 = top[inverse]
        return cls(scores0=np.sort(s0), scores1=np.sort(1 - p[y == 1]))

    @property
    def n0(self) -> int:
        return len(self.scores0)

    @property
    def n1(self) -> int:
        return len(self.scores1)

    def thresholds(self, delta: float) -> Thresholds:
        return Thresholds(delta, quantile(self.scores0, delta), quantile(self.scores1, delta))

    def min_delta(self) -> float:
        """The smallest delta at which class 0 can be excluded at all: 1/(n_0 + 1)."""
        return 1.0 / (self.n0 + 1)
