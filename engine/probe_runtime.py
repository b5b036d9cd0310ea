"""The LYNX probe and the length predictor as the engine's worker holds them (loaded once
per worker process).

The server sets `THINKCTL_PROBE_DIR` and `THINKCTL_LENGTH_DIR` before the engine starts
(spawned processes inherit them); the logits processor loads the artifacts from there, and
the worker extension installs the hooks that capture their features (probes/capture.py).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from thinkctl.probes import capture
from thinkctl.probes.artifact import ProbeArtifact
from thinkctl.probes.length_predictor import LengthPredictor

PROBE_ENV = "THINKCTL_PROBE_DIR"
LENGTH_ENV = "THINKCTL_LENGTH_DIR"


class LoadedProbe:
    """`server.controllers.spec.LynxRuntime` over a probe artifact."""

    def __init__(self, artifact: ProbeArtifact) -> None:
        self.artifact = artifact
        self.cue_ids = frozenset(artifact.meta.features.cue_token_ids)
        self.layers = tuple(artifact.meta.features.layers)
        self.confidence = artifact.meta.features.confidence  # features end with it

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per worker, few deltas
    def thresholds(self, delta: float) -> tuple[float, float]:
        th = self.artifact.calibration.thresholds(delta)
        return th.q0, th.q1

    def scorer(self):
        return lambda features: float(self.scores(features)[0])

    def scores(self, features: torch.Tensor) -> np.ndarray:
        """P(exiting here answers right) for features of shape (d,) or (rows, d), in
        float32 (probes/probe.py)."""
        return self.artifact.probe.prob(features.detach().cpu().numpy(), np.float32)


@functools.cache
def from_env() -> LoadedProbe | None:
    folder = os.environ.get(PROBE_ENV)
    return LoadedProbe(ProbeArtifact.load(folder)) if folder else None


class LoadedLength:
    """`server.controllers.batch.LengthRuntime` over a length predictor, reading its
    blocks out of the features the engine captures."""

    def __init__(self, predictor: LengthPredictor, captured: tuple[int, ...]) -> None:
        self.predictor = predictor
        self._columns = torch.from_numpy(predictor.columns(captured))

    def predict(self, features: torch.Tensor) -> np.ndarray:
        x = features.index_select(1, self._columns.to(features.device))
        return self.predictor.predict(x.detach().cpu().numpy())


@functools.cache
def length_from_env() -> LoadedLength | None:
    folder = os.environ.get(LENGTH_ENV)
    predictor = LengthPredictor.load(folder) if folder else None
    return LoadedLength(predictor, capture.layers_from_env()) if predictor else None
