"""The LYNX probe as the HTTP side knows it: the default delta and the effort map.

The engine's worker loads the same artifact itself (engine/probe_runtime.py);
this side only turns a request's `thinkctl.lynx` / effort into a rule (a delta, or a score
threshold certified for an answer-level risk), a cap and a floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinkctl.probes.artifact import EffortPoint, ProbeArtifact, RiskPoint, point_for_effort


@dataclass(frozen=True)
class ProbeConfig:
    path: str
    default_delta: float
    points: tuple[EffortPoint, ...]  # increasing in effort
    summary: dict[str, Any]
    risk: tuple[RiskPoint, ...] = ()  # increasing in epsilon
    sha256: str | None = None  # of its tensors: what a combined effort table names
    made: dict[str, Any] | None = None  # what it was made with (its training record)
    source: str = "--probe"  # or "the calibration folder", where serve found it by itself

    @classmethod
    def from_artifact(
        cls, path: str, artifact: ProbeArtifact, source: str = "--probe"
    ) -> ProbeConfig:
        points = tuple(sorted(artifact.meta.effort, key=lambda p: p.effort))
        risk = tuple(sorted(artifact.meta.risk, key=lambda p: p.epsilon))
        return cls(path, artifact.meta.default_delta, points, artifact.summary(), risk,
                   artifact.meta.tensors_sha256, artifact.meta.training, source)  # fmt: skip

    def for_accuracy_loss(self, epsilon: float) -> RiskPoint | None:
        """The calibrated point of the largest epsilon not above the one asked for (its
        guarantee holds for the one asked), None when every calibrated one is above it."""
        below = [p for p in self.risk if p.epsilon <= epsilon + 1e-12]
        return below[-1] if below else None

    def for_effort(self, effort: float) -> EffortPoint:
        """The calibrated point of the largest effort not above `effort` (delta: None for
        no exit; max/min_thinking_tokens: the cap and LYNX's exit floor)."""
        point = point_for_effort(self.points, effort)
        return point or EffortPoint(effort=0.0, delta=self.default_delta)

    def describe(self) -> dict[str, Any]:
        """What /v1/models shows."""
        return {"path": self.path, "source": self.source, "made_with": self.made,
                **self.summary, "effort": [p.model_dump() for p in self.points],
                "risk": [p.model_dump() for p in self.risk]}  # fmt: skip
