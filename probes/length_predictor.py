"""Length predictors: from the prompt's features, a query's thinking length in log tokens.

Two targets, both log(1 + tokens):
- **natural**: how long the model thinks when nothing stops it;
- **sufficient**: the earliest cue at which a forced exit already answers right (the
  natural length when none does).

The input is the residual stream of the prompt's last token (probes/capture.py), read at
the prefill step that computes the first logits: the same hooks as LYNX, at an earlier
step. Each target is a ridge regression on standardised features of some captured blocks
(chosen on a validation split by `thinkctl calibrate`, calibration/length.py).

Stored in a calibration folder's `length/` as `predictor.json` (what it reads, how it was
made, how well it ranks) and `predictor.safetensors` (the weights); a subfolder, because
vLLM loads every top-level `*.safetensors` of a model folder as weights. Plain numpy,
never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUBFOLDER = "length"  # of the calibration folder
META_FILE = "predictor.json"
TENSOR_FILE = "predictor.safetensors"
TARGETS = ("natural", "sufficient")


@dataclass(frozen=True)
class LengthPredictor:
    layers: tuple[int, ...]  # 1-based blocks, concatenated in this order
    hidden_size: int
    mean: np.ndarray  # (d,) feature standardisation
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (len(TARGETS), d)
    intercept: np.ndarray  # (len(TARGETS),)
    meta: dict = field(default_factory=dict)  # tokenizer fingerprint, training, quality

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(rows, d) features of `layers` -> (rows, 2) log(1 + tokens): natural, sufficient."""
        x = (np.atleast_2d(features).astype(np.float64) - self.mean) / self.scale
        return x @ self.coef.T + self.intercept

    def columns(self, captured: Sequence[int]) -> np.ndarray:
        """Indices of this predictor's features within features captured for the blocks
        `captured` (concatenated in that order)."""
        missing = [k for k in self.layers if k not in captured]
        if missing:
            raise ValueError(f"the length predictor reads blocks {missing}, which are not "
                             f"captured (captured: {list(captured)})")  # fmt: skip
        h = self.hidden_size
        return np.concatenate([np.arange(h) + list(captured).index(k) * h for k in self.layers])

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # C order: safetensors writes an array's buffer as is, and sklearn's coefficients
        # can come in Fortran order (they would load transposed).
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef,
                  "intercept": self.intercept}  # fmt: skip
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, folder / TENSOR_FILE)
        meta = {"targets": list(TARGETS), "layers": list(self.layers),
                "hidden_size": self.hidden_size, **self.meta}  # fmt: skip
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> LengthPredictor | None:
        """The predictor in `folder`, or None when there is none."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            return None
        from safetensors.numpy import load_file

        meta = json.loads((folder / META_FILE).read_text())
        w = load_file(folder / TENSOR_FILE)
        layers, hidden = tuple(meta.pop("layers")), int(meta.pop("hidden_size"))
        d = len(layers) * hidden
        if w["coef"].shape != (len(TARGETS), d) or w["mean"].shape != (d,):
            raise ValueError(f"{folder / TENSOR_FILE}: weights do not match {META_FILE}")
        meta.pop("targets", None)
        return cls(layers, hidden, w["mean"], w["scale"], w["coef"], w["intercept"], meta)
