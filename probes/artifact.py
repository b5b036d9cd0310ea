"""The probe artifact: a folder with `probe.json` (spec, model facts, thresholds' data
description, effort mapping) and `probe.safetensors` (probe weights and the calibration
scores). Never pickle. Loading checks integrity; `check_model` checks the served model.

Everything wrong with a file raises `ProbeError` with a message that says what.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thinkctl.errors import ProbeError
from thinkctl.probes.conformal import Calibration
from thinkctl.probes.features import FeatureSpec, ModelFacts
from thinkctl.probes.probe import Probe

FORMAT = "thinkctl-lynx-probe/1"
META_FILE = "probe.json"
TENSOR_FILE = "probe.safetensors"


class EffortPoint(BaseModel):
    """An effort's LYNX rule: a score threshold (calibration/lynx.py's effort map; older
    files: a delta and a floor), a cap, and the answer-level risk it is certified at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effort: float = Field(ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    delta: float | None = Field(default=None, gt=0, lt=1)  # neither: no LYNX exit
    max_thinking_tokens: int | None = Field(default=None, ge=0)
    # No LYNX exit before thinking holds this many tokens. Files without it read as 0.
    min_thinking_tokens: int = Field(default=0, ge=0)
    max_accuracy_loss: float | None = Field(default=None, gt=0, lt=1)


class RiskPoint(BaseModel):
    """Learn-then-Test's choice for one answer-level risk (calibration/risk.py): exit at
    the first cue scoring above `threshold` (None: no threshold was certified, no exit),
    and P(accuracy loss against natural thinking > epsilon) <= alpha."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(gt=0, lt=1)
    alpha: float = Field(gt=0, lt=1)
    threshold: float | None = Field(ge=0, le=1)


def point_for_effort(points: Sequence[EffortPoint], effort: float) -> EffortPoint | None:
    """The point of the largest calibrated effort not above `effort` (None: none is)."""
    below = [p for p in points if p.effort <= effort + 1e-9]
    return max(below, key=lambda p: p.effort) if below else None


class ProbeMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str
    model: ModelFacts
    features: FeatureSpec
    kind: str
    default_delta: float = Field(gt=0, lt=1)
    effort: list[EffortPoint] = []
    risk: list[RiskPoint] = []
    tensors_sha256: str
    training: dict[str, Any] = {}


class ProbeArtifact:
    def __init__(self, meta: ProbeMeta, probe: Probe, calibration: Calibration) -> None:
        self.meta, self.probe, self.calibration = meta, probe, calibration

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = self.probe.tensors()
        tensors["calibration.scores0"] = self.calibration.scores0.astype(np.float64)
        tensors["calibration.scores1"] = self.calibration.scores1.astype(np.float64)
        save_file(tensors, folder / TENSOR_FILE)
        self.meta.tensors_sha256 = _sha256(folder / TENSOR_FILE)
        (folder / META_FILE).write_text(self.meta.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ProbeArtifact:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta_path, tensor_path = folder / META_FILE, folder / TENSOR_FILE
        for path in (meta_path, tensor_path):
            if not path.is_file():
                raise ProbeError(f"{folder}: missing {path.name}; is this a probe folder?")
        try:
            raw = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProbeError(f"{meta_path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            got = raw.get("format") if isinstance(raw, dict) else None
            raise ProbeError(f"{meta_path}: format {got!r}, expected {FORMAT!r}")
        try:
            meta = ProbeMeta.model_validate(raw)
        except ValidationError as exc:
            raise ProbeError(f"{meta_path}: invalid ({exc.errors()[0]['msg']} at "
                             f"{'.'.join(map(str, exc.errors()[0]['loc']))})") from exc  # fmt: skip
        if _sha256(tensor_path) != meta.tensors_sha256:
            raise ProbeError(f"{tensor_path}: checksum mismatch (corrupt or replaced file)")
        try:
            tensors = load_file(tensor_path)
            probe = Probe.from_tensors(tensors)
            calibration = Calibration(
                scores0=np.sort(tensors["calibration.scores0"].astype(np.float64)),
                scores1=np.sort(tensors["calibration.scores1"].astype(np.float64)),
            )
        except (SafetensorError, KeyError, OSError) as exc:
            raise ProbeError(f"{tensor_path}: unreadable or incomplete ({exc})") from exc
        expected = meta.features.dim(meta.model.hidden_size)
        shapes_ok = probe.dim == expected and probe.weights[-1].shape[1] == 1
        for w_in, w_out in zip(probe.weights, probe.weights[1:], strict=False):
            shapes_ok = shapes_ok and w_in.shape[1] == w_out.shape[0]
        if not shapes_ok:
            raise ProbeError(f"{tensor_path}: weight shapes do not match a {expected}-d probe")
        return cls(meta, probe, calibration)

    def check_model(self, facts: ModelFacts) -> None:
        """Refuse a model other than the one the probe was made for."""
        want = self.meta.model
        problems = []
        for field in ("hidden_size", "num_layers", "vocab_size"):
            if getattr(want, field) != getattr(facts, field):
                problems.append(f"{field} {getattr(want, field)} != {getattr(facts, field)}")
        if want.tokenizer_sha256 != facts.tokenizer_sha256:
            problems.append("the tokenizer's vocabulary differs")
        bad_layers = [k for k in self.meta.features.layers if not 1 <= k <= facts.num_layers]
        if bad_layers:
            problems.append(f"layers {bad_layers} outside 1..{facts.num_layers}")
        if problems:
            raise ProbeError(
                "probe was made for another model: " + "; ".join(problems) + " (probe vs served)"
            )

    def check_exit(self, close_ids: list[int]) -> None:
        """Refuse serving where exits force another sequence than the one the probe was
        calibrated on (its labels, and so its guarantees, are of that sequence's answers).
        A probe made before the sequence was recorded is not checked."""
        recorded = self.meta.training.get("exit_ids")
        if recorded is not None and list(recorded) != list(close_ids):
            raise ProbeError(
                f"probe was calibrated on the exit sequence {list(recorded)}, but this server "
                f"forces {list(close_ids)} (another answer inducer or end of thinking): "
                "calibrate again, or serve with the probe's --answer-inducer"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.meta.kind,
            "layers": list(self.meta.features.layers),
            "confidence": self.meta.features.confidence,
            "default_delta": self.meta.default_delta,
            "n_cal_class0": self.calibration.n0,
            "min_delta": round(self.calibration.min_delta(), 6),
            "finite": math.isfinite(self.calibration.thresholds(self.meta.default_delta).q0),
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
