"""The LYNX probe: standardise, then a small classifier of "exiting here answers right".

Trained with scikit-learn (`fit`), then exported to plain arrays so that it is stored as
safetensors (never pickle) and evaluated in the engine's worker with one matmul per
layer (`Probe.prob`), without scikit-learn on the decode path. `Probe.prob` reproduces
`predict_proba(...)[:, 1]` of the fitted pipeline (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from scipy.special import expit

Kind = Literal["mlp", "logreg"]
# LYNX's probe: two hidden layers of 256 and 64 ReLU units.
MLP_HIDDEN = (256, 64)


@dataclass
class Probe:
    mean: np.ndarray  # (d,) scaler mean
    scale: np.ndarray  # (d,) scaler scale
    weights: list[np.ndarray]  # per layer (d_in, d_out); the last has d_out = 1
    biases: list[np.ndarray]  # per layer (d_out,)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @cached_property
    def _layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The layers with the scaler folded into the first: ((x - m) / s) @ W + b is
        x @ (W / s) + (b - (m / s) @ W), two passes over the features saved per call."""
        w0, b0 = self.weights[0], self.biases[0]
        first = (w0 / self.scale[:, None], b0 - (self.mean / self.scale) @ w0)
        return [first, *zip(self.weights[1:], self.biases[1:], strict=True)]

    @cached_property
    def _layers32(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(w.astype(np.float32), b.astype(np.float32)) for w, b in self._layers]

    def prob(self, x: np.ndarray | torch.Tensor, dtype: type = np.float64) -> np.ndarray:
        """P(exiting here answers right) for features x of shape (d,) or (n, d), computed
        in `dtype`: float64 in calibration, float32 in the engine (the captured features'
        own precision: no float64 copy of the batch at every step). The two agree within
        1e-5 (tests/probes/test_probe.py)."""
        z = np.atleast_2d(np.asarray(x, dtype=dtype))
        layers = self._layers32 if dtype == np.float32 else self._layers
        for i, (w, b) in enumerate(layers):
            z = z @ w
            z += b
            if i < len(layers) - 1:
                np.maximum(z, 0.0, out=z)
        return expit(z[:, 0])  # the logistic, as scikit-learn computes it

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"scaler.mean": self.mean, "scaler.scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"layer{i}.weight"], out[f"layer{i}.bias"] = w, b
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}

    @classmethod
    def from_tensors(cls, t: dict[str, np.ndarray]) -> Probe:
        n = sum(1 for k in t if k.endswith(".weight"))
        return cls(
            mean=t["scaler.mean"].astype(np.float64),
            scale=t["scaler.scale"].astype(np.float64),
            weights=[t[f"layer{i}.weight"].astype(np.float64) for i in range(n)],
            biases=[t[f"layer{i}.bias"].astype(np.float64) for i in range(n)],
        )


def class_weights(y: np.ndarray) -> np.ndarray:
    """Per-sample weights N / (2 N_c): both classes weigh the same in the loss."""
    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=2).astype(float)
    return (len(y) / (2.0 * np.maximum(counts, 1.0)))[y]


def fit(x: np.ndarray, y: np.ndarray, kind: Kind = "mlp", seed: int = 0):
    """A fitted scikit-learn pipeline (StandardScaler -> classifier), class-balanced."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "mlp":
        clf = MLPClassifier(
            hidden_layer_sizes=MLP_HIDDEN, early_stopping=True, n_iter_no_change=10,
            max_iter=500, random_state=seed,
        )  # fmt: skip
    else:
        clf = LogisticRegression(max_iter=2000, random_state=seed)
    pipe = make_pipeline(StandardScaler(), clf)
    step = pipe.steps[-1][0]
    pipe.fit(x, y, **{f"{step}__sample_weight": class_weights(y)})
    return pipe


def export(pipe) -> Probe:
    """The arrays of a fitted pipeline from `fit`."""
    scaler, clf = pipe.steps[0][1], pipe.steps[-1][1]
    if list(clf.classes_) != [0, 1]:
        raise ValueError(f"need both classes 0 and 1, got {list(clf.classes_)}")
    if hasattr(clf, "coefs_"):
        weights, biases = list(clf.coefs_), list(clf.intercepts_)
        if clf.out_activation_ != "logistic":
            raise ValueError(f"unexpected output activation {clf.out_activation_}")
    else:
        weights, biases = [clf.coef_.T], [clf.intercept_]
    return Probe(scaler.mean_, scaler.scale_, weights, biases)
