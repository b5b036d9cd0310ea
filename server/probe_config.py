"""The LYNX probe as the HTTP side knows it: the default delta and the effort map.

The engine's worker loads the same artifact itself (engine/probe_runtime.py);
this side only turns a request's `thinkctl.lynx` / effort into a delta, a cap and a floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probes.artifact import EffortPoint, ProbeArtifact, point_for_effort


@dataclass(frozen=True)
class ProbeConfig:
    path: str
    default_delta: float
    points: tuple[EffortPoint, ...]  # increasing in effort
    summary: dict[str, Any]

    @classmethod
    def from_artifact(cls, path: str, artifact: ProbeArtifact) -> ProbeConfig:
        points = tuple(sorted(artifact.meta.effort, key=lambda p: p.effort))
        return cls(path, artifact.meta.default_delta, points, artifact.summary())

    def for_effort(self, effort: float) -> EffortPoint:
        """The calibrated point of the largest effort not above `effort` (delta: None for
        no exit; max/min_thinking_tokens: the cap and LYNX's exit floor)."""
        point = point_for_effort(self.points, effort)
        return point or EffortPoint(effort=0.0, delta=self.default_delta)

    def describe(self) -> dict[str, Any]:
        """What /v1/models shows."""
        return {**self.summary, "effort": [p.model_dump() for p in self.points]}
