"""Exits with a guarantee at the level of answers: Learn-then-Test on the probe's score.

The policies: exit at the first cue whose probe score exceeds a threshold t (t on a grid
fixed before calibration; t = +inf never exits). The loss of a trace at t is 1 when its
natural thinking answers right and the exit at t answers wrong (a malformed forced answer
is wrong), else 0: an upper bound on the accuracy lost against natural thinking. A
question's loss is the mean over its traces. Questions, not cue events, are the
exchangeable unit, so the risk R(t) is the expected loss of a new question.

Learn then Test (Angelopoulos, Bates, Candès, Jordan, Lei, 2021): each t is a null
hypothesis H_t: R(t) > epsilon, with the Hoeffding-Bentkus p-value of the calibration
questions' mean loss (valid for losses in [0, 1]); the thresholds are tested in a fixed
sequence from the safest (highest) down, stopping at the first null that stands. Every t
rejected on the way is certified together, so the lowest of them, the one that exits most,
satisfies P(R(t) > epsilon) <= alpha over the draw of calibration questions. The risk
need not be monotone in t; the fixed sequence is what makes the family-wise error hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from thinkctl.calibration.traces import Traces

METHOD = (
    "Learn-then-Test: Hoeffding-Bentkus p-values of per-question losses, fixed-sequence "
    "testing from the highest threshold down; guarantees P(risk > epsilon) <= alpha"
)
# The answer-level risks calibrated (a request's is rounded down to one of them), and
# the confidence of their guarantee.
EPSILONS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
ALPHA = 0.1


def hb_p_value(mean_loss, n: int, epsilon: float):
    """Hoeffding-Bentkus p-value of H: R > epsilon, from the mean of n losses in [0, 1]
    (a float or an array of them)."""
    mean = np.asarray(mean_loss, np.float64)
    if n <= 0:
        return np.ones_like(mean)[()]
    a = np.minimum(mean, epsilon)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 = 0
        kl = np.where(a > 0, a * np.log(a / epsilon), 0.0) + np.where(
            a < 1, (1 - a) * np.log((1 - a) / (1 - epsilon)), 0.0
        )
    hoeffding = np.exp(-n * kl)
    bentkus = math.e * binom.cdf(np.ceil(n * mean - 1e-9), n, epsilon)
    return np.minimum(np.minimum(hoeffding, bentkus), 1.0)[()]


def certified(losses: np.ndarray, epsilon: float, alpha: float) -> int:
    """How many leading columns of `losses` (questions x thresholds, safest first) fixed-
    sequence testing certifies at risk <= epsilon: the chosen one is the last of them."""
    p = hb_p_value(losses.mean(axis=0), losses.shape[0], epsilon)
    standing = np.flatnonzero(np.atleast_1d(p) > alpha)
    return int(standing[0]) if len(standing) else losses.shape[1]


@dataclass
class ExitTable:
    """Every trace's outcome under every threshold (columns: `thresholds`, safest first)."""

    thresholds: np.ndarray  # (k,) descending; the first is +inf (never exit)
    question: np.ndarray  # (t,) the question of each trace
    loss: np.ndarray  # (t, k) natural right and the exit wrong
    correct: np.ndarray  # (t, k) the answer right
    tokens: np.ndarray  # (t, k) thinking tokens spent

    def per_question(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(questions, mean of `values` over each question's traces per column)."""
        order = np.argsort(self.question, kind="stable")
        qs, first, counts = np.unique(self.question[order], return_index=True,
                                      return_counts=True)  # fmt: skip
        return qs, np.add.reduceat(values[order], first, axis=0) / counts[:, None]


def threshold_grid(train_scores: np.ndarray, size: int = 400) -> np.ndarray:
    """Candidate thresholds, safest first: +inf, then quantiles of the probe's scores on
    its own training events, descending. Fixed before the calibration questions are seen,
    as Learn-then-Test needs."""
    qs = np.quantile(np.asarray(train_scores, np.float64), np.linspace(0, 1, size))
    return np.r_[np.inf, np.unique(qs)[::-1]]


def exit_table(traces: Traces, trace_ids: np.ndarray, p: np.ndarray, grid: np.ndarray) -> ExitTable:
    """Replays "exit at the first cue scoring above t" for every t of `grid` on the given
    traces at once. `p`: the probe's score of every event (all events may exit, as they
    do when served; a malformed forced answer counts as wrong)."""
    ev = traces.events
    local = np.full(len(traces.question), -1)
    local[trace_ids] = np.arange(len(trace_ids))
    on = local[ev.trace] >= 0
    order = np.where(on)[0][np.lexsort((ev.position[on], ev.trace[on]))]
    tr, score = local[ev.trace[order]], p[order]
    starts = np.r_[True, tr[1:] != tr[:-1]] if len(tr) else np.zeros(0, bool)
    asc = grid[::-1]  # ascending, +inf last
    k = len(grid)
    # Event j is its trace's first exit for the thresholds t with max(earlier) <= t < p_j:
    # in grid indices (ascending), from the count of thresholds below the highest earlier
    # score, up to the count below its own. Counts are integers, so one running maximum
    # offset per trace restarts exactly at each trace.
    hi = np.searchsorted(asc, score, "left")
    offset = np.cumsum(starts) * (k + 1)
    running = np.maximum.accumulate(hi + offset) - offset
    lo = np.where(starts, 0, np.r_[0, running[:-1]])
    first = lo < hi  # else an earlier cue exits at every threshold this one would
    order, tr, lo, hi = order[first], tr[first], lo[first], hi[first]
    natural_len = traces.thinking_tokens[trace_ids].astype(np.float64)
    natural_ok = traces.correct[trace_ids].astype(np.float64)
    right = (ev.label[order] == 1).astype(np.float64)

    def spread(values: np.ndarray) -> np.ndarray:
        """(traces, k ascending): each event's value over its thresholds [lo, hi)."""
        diff = np.zeros((len(trace_ids), k + 1))
        np.add.at(diff, (tr, lo), values)
        np.add.at(diff, (tr, hi), -values)
        return np.cumsum(diff, axis=1)[:, :k][:, ::-1]  # back to safest first

    exited = spread(np.ones(len(order)))
    exit_right = spread(right)
    exit_len = spread(ev.position[order] + 1.0)
    correct = np.where(exited > 0, exit_right, natural_ok[:, None])
    tokens = np.where(exited > 0, exit_len, natural_len[:, None])
    loss = natural_ok[:, None] * (1 - correct)
    return ExitTable(grid, traces.question[trace_ids], loss, correct, tokens)


def resplit(
    table: ExitTable,
    epsilons: list[float],
    alpha: float,
    cal_share: float,
    n_splits: int = 200,
    seed: int = 0,
) -> dict[float, dict]:
    """Re-split the table's questions into calibration and test parts many times, choose
    on the one and measure on the other: the mean test loss (what the guarantee bounds in
    probability) and the share of splits whose test loss exceeds epsilon."""
    _, losses = table.per_question(table.loss)
    rng = np.random.default_rng(seed)
    n = len(losses)
    n_cal = int(round(cal_share * n))
    out: dict[float, list[float]] = {e: [] for e in epsilons}
    for _ in range(n_splits):
        perm = rng.permutation(n)
        cal, test = losses[perm[:n_cal]], losses[perm[n_cal:]]
        for e in epsilons:
            col = max(certified(cal, e, alpha) - 1, 0)
            out[e].append(float(test[:, col].mean()))
    return {
        e: {
            "resplit_loss_mean": float(np.mean(v)),
            "resplit_share_over_epsilon": float(np.mean(np.asarray(v) > e)),
            "n_splits": n_splits,
        }  # fmt: skip
        for e, v in out.items()
    }
