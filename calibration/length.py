"""Length predictors and per-query effort, fitted on calibration traces (`thinkctl calibrate`).

- **Targets** of each trace: its natural thinking length, and its sufficient length (the
  earliest labelled forced exit that answers right, at a cue or on the `--exit-every`
  grid, tokens thought included; the natural length when none does). Both as
  log(1 + tokens).
- **Predictors** (probes/length_predictor.py): ridge regression on the prompt's last-token
  features, fitted on the train questions; which captured blocks it reads is chosen on the
  calibration questions (the best summed Spearman rho of both targets).
- **Per-query effort** (probes/effort_table.QueryBudget): for each effort of the table's grid,
  a budget per bin of predicted natural length, chosen on the calibration questions to
  answer best while spending no more than the global cap there (`fit_policy`). The global
  cap is one member of the family, so the chosen policy is never worse than it on those
  questions.

Budgets replay on traces the way the server cuts them: a trace longer than its budget is
closed at the budget, and answers as its last cue at or before the budget answered under a
forced exit (no cue before it: wrong). Its cost is the budget. Grid exits (`--exit-every`)
count as cues here: they tell where a cut between cues would answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

from thinkctl.calibration.traces import Traces
from thinkctl.probes.effort_table import QueryBudget
from thinkctl.probes.length_predictor import LengthPredictor

ALPHAS = np.logspace(-2, 5, 15)  # ridge strengths tried (leave-one-out on train)
N_BINS = 10  # per-query effort: bins of predicted natural length
BUDGET_STEPS = 201  # budgets tried per bin, from 0 to the longest trace


@dataclass
class Replay:
    """The traces' outcomes under any per-trace budget, vectorised over traces."""

    natural: np.ndarray  # (t,) thinking tokens
    correct: np.ndarray  # (t,) the natural answer is right
    key: np.ndarray  # (m,) labelled exits sorted by trace, then tokens thought there
    trace: np.ndarray  # (m,) their trace
    right: np.ndarray  # (m,) a forced exit there answers right
    stride: int

    @classmethod
    def of(cls, tr: Traces) -> Replay:
        """Over the traces' labelled exits: their cues, and their grid exits if any."""
        parts = [tr.events] + ([tr.grid] if tr.grid is not None else [])
        trace = np.concatenate([e.trace for e in parts])
        position = np.concatenate([e.position for e in parts])
        label = np.concatenate([e.label for e in parts])
        stride = int(tr.thinking_tokens.max()) + 2
        key = trace * stride + position + 1
        order = np.argsort(key, kind="stable")
        return cls(tr.thinking_tokens.astype(np.float64), tr.correct.astype(bool), key[order],
                   trace[order], label[order] == 1, stride)  # fmt: skip

    def run(self, idx: np.ndarray, budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correctness and thinking tokens of traces `idx` under `budgets`."""
        natural = self.natural[idx]
        b = np.minimum(budgets, self.stride - 1)
        if len(self.key):
            j = np.searchsorted(self.key, idx * self.stride + b, side="right") - 1
            jc = np.clip(j, 0, None)
            cut_right = (j >= 0) & (self.trace[jc] == idx) & self.right[jc]
        else:  # no labelled exit anywhere: every cut answers wrong
            cut_right = np.zeros(len(idx), bool)
        return np.where(natural > b, cut_right, self.correct[idx]), np.minimum(natural, b)

    def sufficient(self) -> np.ndarray:
        """(t,) the earliest labelled exit (tokens thought) that answers right, else the
        natural length."""
        out = self.natural.copy()
        hits = np.flatnonzero(self.right)
        first = np.unique(self.trace[hits], return_index=True)
        tokens = self.key[hits[first[1]]] - first[0] * self.stride
        out[first[0]] = np.minimum(out[first[0]], tokens)
        return out


def targets(rp: Replay) -> np.ndarray:
    """(t, 2) log(1 + tokens): natural, sufficient."""
    return np.log1p(np.stack([rp.natural, rp.sufficient()], axis=1))


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


def fit_predictor(
    features: np.ndarray, y: np.ndarray, split: dict[str, np.ndarray], layers: tuple[int, ...],
    hidden: int, meta: dict,
) -> tuple[LengthPredictor, dict]:  # fmt: skip
    """The predictor over the best subset of `layers` (each block alone, or all of them):
    fitted on split['train'] traces, chosen on split['cal'], reported on split['test']."""
    subsets = [(k,) for k in layers] + ([tuple(layers)] if len(layers) > 1 else [])
    tried, best = {}, None
    for sub in subsets:
        cols = np.concatenate([np.arange(hidden) + layers.index(k) * hidden for k in sub])
        x = features[:, cols].astype(np.float64)
        mean, scale = x[split["train"]].mean(0), x[split["train"]].std(0) + 1e-6
        z = (x - mean) / scale
        model = RidgeCV(alphas=ALPHAS).fit(z[split["train"]], y[split["train"]])
        pred = model.predict(z)
        val = [_rho(pred[split["cal"], t], y[split["cal"], t]) for t in range(2)]
        tried[",".join(map(str, sub))] = [round(v, 4) for v in val]
        if best is None or sum(val) > best[0]:
            coef, icpt = np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_)
            best = (sum(val), sub, mean, scale, coef, icpt, pred, float(model.alpha_))
    _, sub, mean, scale, coef, icpt, pred, alpha = best
    test = split["test"]
    quality = {
        "spearman_test": {"natural": round(_rho(pred[test, 0], y[test, 0]), 4),
                          "sufficient": round(_rho(pred[test, 1], y[test, 1]), 4)},
        "spearman_validation_by_layers": tried,
        "ridge_alpha": alpha,
        "n_traces": {k: int(v.sum()) for k, v in split.items()},
    }  # fmt: skip
    predictor = LengthPredictor(sub, hidden, mean, scale, coef, icpt, {**meta, **quality})
    return predictor, quality


def fit_policy(
    rp: Replay, idx: np.ndarray, pred: np.ndarray, global_points: list[tuple[float, int]],
    n_bins: int = N_BINS,
) -> list[QueryBudget]:  # fmt: skip
    """Per-query points for the efforts of `global_points` ((effort, global cap) pairs),
    chosen on traces `idx` with predictions `pred` ((t, 2) log tokens).

    The traces are binned by predicted natural length (quantiles). Budgets start at 0
    and, greedily, the bin whose raise to some higher budget buys the most right answers
    per token spent is raised, while the spend stays within the global cap's; the global
    cap itself is kept where it answers better on these traces."""
    natural = rp.natural[idx]
    grid = np.unique(np.linspace(0, natural.max() + 1, BUDGET_STEPS).round())
    cuts = np.quantile(pred[idx, 0], np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = tuple(float(e) for e in np.unique(np.expm1(cuts).round(2)))
    q0 = QueryBudget(0.0, edges, (0,) * (len(edges) + 1))
    which = np.searchsorted(np.asarray(edges), np.expm1(pred[idx, 0]), "right")
    ok, spend = [], []  # per bin: right answers and tokens at each budget of the grid
    for k in range(len(edges) + 1):
        members = idx[which == k]
        runs = [rp.run(members, np.full(len(members), g)) for g in grid]
        ok.append(np.array([r[0].sum() for r in runs], np.float64))
        spend.append(np.array([r[1].sum() for r in runs], np.float64))
    points = []
    for e, cap in global_points:
        g_ok, g_spend = rp.run(idx, np.full(len(idx), cap, np.float64))
        pick = _greedy(ok, spend, g_spend.sum())
        q = dataclasses.replace(q0, effort=e, budgets=tuple(int(grid[j]) for j in pick))
        q_ok = sum(ok[k][j] for k, j in enumerate(pick)) / len(idx)
        points.append(q if q_ok > g_ok.mean() else QueryBudget(e, (), (cap,)))
    return points


def _greedy(ok: list[np.ndarray], spend: list[np.ndarray], total: float) -> list[int]:
    """Grid indices per bin: raise the bin with the best right answers per token (to any
    higher budget: gains come in jumps) while the summed spend stays within `total`."""
    pick = [0] * len(ok)
    used = sum(s[0] for s in spend)
    while True:
        best = None
        for k, (o, s) in enumerate(zip(ok, spend, strict=True)):
            gain, cost = o[pick[k] + 1 :] - o[pick[k]], s[pick[k] + 1 :] - s[pick[k]]
            if not len(gain):
                continue
            ratio = np.where((cost > 0) & (used + cost <= total), gain / np.maximum(cost, 1e-9),
                             -np.inf)  # fmt: skip
            j = int(np.argmax(ratio))
            if ratio[j] > 0 and (best is None or ratio[j] > best[0]):
                best = (ratio[j], k, pick[k] + 1 + j)
        if best is None:
            return pick
        _, k, j = best
        used += spend[k][j] - spend[k][pick[k]]
        pick[k] = j


def compare(
    rp: Replay, idx: np.ndarray, pred: np.ndarray, points: list[QueryBudget],
    global_points: list[tuple[float, int]], efforts: tuple[float, ...],
) -> list[dict]:  # fmt: skip
    """Replayed accuracy and mean thinking tokens on traces `idx`, global cap against
    per-query budgets, at `efforts`."""
    by_effort = {q.effort: q for q in points}
    caps = dict(global_points)
    rows = []
    for e in efforts:
        g_ok, g_spend = rp.run(idx, np.full(len(idx), caps[e], np.float64))
        q = by_effort[e]
        q_ok, q_spend = rp.run(idx, q.budgets_for(pred[idx, 0]))
        rows.append({"effort": e, "global_accuracy": round(float(g_ok.mean()), 4),
                     "global_thinking_tokens": round(float(g_spend.mean()), 1),
                     "per_query_accuracy": round(float(q_ok.mean()), 4),
                     "per_query_thinking_tokens": round(float(q_spend.mean()), 1)})  # fmt: skip
    return rows
