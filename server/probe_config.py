"""The LYNX probe as the HTTP side knows it: the default delta and the effort map.

The engine's worker loads the same artifact itself (server/engine/probe_runtime.py);
this side only turns a request's `thinkctl.lynx` / effort into a delta and a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probes.artifact import ProbeArtifact


@dataclass(frozen=True)
class ProbeConfig:
    path: str
    default_delta: float
    # (effort, delta or None for no exit, thinking cap or None), increasing in effort
    points: tuple[tuple[float, float | None, int | None], ...]
    summary: dict[str, Any]

    @classmethod
    def from_artifact(cls, path: str, artifact: ProbeArtifact) -> ProbeConfig:
        points = tuple(
            (p.effort, p.delta, p.max_thinking_tokens)
            for p in sorted(artifact.meta.effort, key=lambda p: p.effort)
        )
        return cls(path, artifact.meta.default_delta, points, artifact.summary())

    def for_effort(self, effort: float) -> tuple[float | None, int | None]:
        """(delta, cap) of the largest calibrated effort not above `effort`."""
        chosen: tuple[float | None, int | None] = (self.default_delta, None)
        for e, delta, cap in self.points:
            if e <= effort + 1e-9:
                chosen = (delta, cap)
        return chosen

    def describe(self) -> dict[str, Any]:
        """What /v1/models shows."""
        return {
            **self.summary,
            "effort": [
                {"effort": e, "delta": d, "max_thinking_tokens": c} for e, d, c in self.points
            ],  # fmt: skip
        }
