"""The effort table: effort e in [0, 1] -> a thinking budget giving ~e x natural length.

Following e1 (arXiv 2510.27042), effort is a fraction of the model's *natural* thinking
length. On a calibration set sampled like the serving default, with natural thinking
lengths L_i, the budget for effort e is the smallest b with

    mean_i min(L_i, b)  >=  e * mean_i L_i

(a cap at b leaves short traces alone and cuts long ones to b), so on that set effort e
spends e of the natural mean. Budgets are non-decreasing in e by construction.

**Per-query effort** (`per_query` in the table, when a length predictor was calibrated):
effort e gives each query its own budget from its predicted natural length
(probes/length_predictor.py), `QueryBudget`, chosen on calibration questions to answer best
at no more spend than the global cap for the same e (calibration/length.py).

**Combined effort** (`combined`, when the same run also calibrated a LYNX probe): effort e
is a pair, a LYNX exit at a certified threshold that exits early and a budget (per query,
or one cap) that caps late, `CombinedPoint`, chosen on calibration questions
(calibration/combined.py). It names the probe it was fitted with (the checksum of its
tensors), and holds only for that probe.

**The answer reserve** (`answer_reserve`): the tokens a forced close should leave for the
answer, the `ANSWER_PERCENTILE`th percentile of the answer's length after natural thinking
on the calibration traces (answers after forced exits are cut at calibrate's
--answer-tokens, so they cannot size it).

Written by calibration (`thinkctl calibrate`, or `python -m thinkctl.calibration.effort` for the
global table alone) as `effort.json` in the model's calibration folder; read by the server.
Plain JSON, never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EFFORT_FILE = "effort.json"
GRID_STEP = 0.05
GRID = tuple(round(i * GRID_STEP, 2) for i in range(21))  # 0, 0.05, ..., 1
ANSWER_PERCENTILE = 95


@dataclass(frozen=True)
class Level:
    """One of OpenAI's `reasoning_effort` levels: its effort (a fraction of natural thinking)
    and its thinking budget on a model without an effort table (None: uncapped)."""

    effort: float
    uncalibrated_budget: int | None


# The one table of levels. A model's calibration may state its own fractions (effort.json's
# "levels"); `max` is always uncapped.
LEVEL_TABLE = {
    "none": Level(0.0, 0),
    "minimal": Level(0.1, 64),
    "low": Level(0.25, 256),
    "medium": Level(0.5, 1024),
    "high": Level(0.75, 4096),
    "xhigh": Level(0.9, 16384),
    "max": Level(1.0, None),
}
# The levels a calibration maps to budgets (all but the uncapped `max`), as fractions.
LEVELS = {k: v.effort for k, v in LEVEL_TABLE.items() if k != "max"}


def budget_for(lengths: Sequence[int], effort: float) -> int:
    """The smallest cap b with mean(min(L, b)) >= effort * mean(L)."""
    arr = np.sort(np.asarray(lengths, dtype=np.int64))
    if effort <= 0 or len(arr) == 0:
        return 0
    target = effort * arr.mean()
    lo, hi = 0, int(arr[-1])  # mean(min(L, b)) is non-decreasing in b: bisect the integers
    while lo < hi:
        mid = (lo + hi) // 2
        if np.minimum(arr, mid).mean() >= target - 1e-9:
            hi = mid
        else:
            lo = mid + 1
    return lo


def fit(lengths: Sequence[int], grid: Sequence[float] = GRID) -> dict:
    """The table for these natural thinking lengths."""
    return {
        "policy": "budget",
        "natural_mean_thinking_tokens": round(float(np.mean(lengths)), 1),
        "natural_max_thinking_tokens": int(np.max(lengths)),
        "points": [[e, budget_for(lengths, e)] for e in grid],
        "levels": dict(LEVELS),
    }


def answer_reserve(answer_tokens: Sequence[int]) -> dict | None:
    """The reserve from answer lengths (negative: unknown, skipped); None without any."""
    known = np.asarray(answer_tokens, dtype=np.int64)
    known = known[known >= 0]
    if len(known) == 0:
        return None
    # The smallest length that at least ANSWER_PERCENTILE % of the answers fit in.
    tokens = int(np.percentile(known, ANSWER_PERCENTILE, method="inverted_cdf"))
    return {"tokens": tokens, "percentile": ANSWER_PERCENTILE, "n": int(len(known))}


def read(folder: str | Path) -> dict | None:
    """The table in `folder`, checked; None when there is none."""
    path = Path(folder) / EFFORT_FILE
    if not path.is_file():
        return None
    table = json.loads(path.read_text())
    points = table.get("points") or []
    efforts = [e for e, _ in points]
    budgets = [b for _, b in points]
    if not points or efforts != sorted(efforts) or budgets != sorted(budgets):
        raise ValueError(f"{path}: points must be (effort, budget) pairs, both non-decreasing")
    if not all(0 <= e <= 1 for e in efforts) or min(budgets) < 0:
        raise ValueError(f"{path}: efforts must lie in [0, 1] and budgets be >= 0")
    return table


@dataclass(frozen=True)
class QueryBudget:
    """Effort e's budget for one query: a table over its predicted natural thinking length,
    `budgets[k]` for predictions in bin k of `edges` (tokens, ascending; bin 0 below the
    first edge). Chosen per bin on calibration questions (calibration/length.py), so it can
    give a bin its sufficient length, or nothing at all where a right answer is out of reach
    at that effort. No edges: one budget, the global cap as a member of the family."""

    effort: float
    edges: tuple[float, ...]
    budgets: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.budgets) != len(self.edges) + 1 or min(self.budgets) < 0:
            raise ValueError("a per-query point needs len(edges) + 1 budgets, all >= 0")
        if list(self.edges) != sorted(self.edges):
            raise ValueError("a per-query point's edges must ascend")

    def budgets_for(self, log_natural: np.ndarray) -> np.ndarray:
        """Budgets of predictions log(1 + natural tokens)."""
        k = np.searchsorted(np.asarray(self.edges), np.expm1(np.asarray(log_natural)), "right")
        return np.asarray(self.budgets, dtype=np.float64)[k]

    def budget(self, log_natural: float) -> int:
        return int(self.budgets_for(np.array([log_natural]))[0])

    def as_json(self) -> dict:
        return {"effort": self.effort, "edges": list(self.edges), "budgets": list(self.budgets)}


def query_points(table: dict) -> tuple[QueryBudget, ...]:
    """The per-query points of a table (empty without them), by increasing effort."""
    rows = (table.get("per_query") or {}).get("points") or []
    points = (QueryBudget(float(r["effort"]), tuple(map(float, r["edges"])),
                          tuple(map(int, r["budgets"]))) for r in rows)  # fmt: skip
    return tuple(sorted(points, key=lambda q: q.effort))


@dataclass(frozen=True)
class CombinedPoint:
    """Effort e as one policy: exit at the first cue scoring above `threshold` (None: no
    LYNX exit; `epsilon`: the smallest answer-level risk that threshold is certified at),
    and cap thinking by the per-query point of effort `query_effort`, or else by `cap`
    (both None: no cap)."""

    effort: float
    threshold: float | None = None
    epsilon: float | None = None
    query_effort: float | None = None
    cap: int | None = None

    def __post_init__(self) -> None:
        if self.query_effort is not None and self.cap is not None:
            raise ValueError("a combined point caps by a per-query point or by one cap, not both")

    def as_json(self) -> dict:
        return {"effort": self.effort, "threshold": self.threshold, "epsilon": self.epsilon,
                "query_effort": self.query_effort, "cap": self.cap}  # fmt: skip


def combined_points(table: dict) -> tuple[tuple[CombinedPoint, ...], str | None]:
    """The combined points of a table by increasing effort, and the checksum of the probe
    they were fitted with (((), None) without them)."""
    combined = table.get("combined") or {}
    keys = ("effort", "threshold", "epsilon", "query_effort", "cap")
    points = (CombinedPoint(**{k: r.get(k) for k in keys}) for r in combined.get("points", []))
    return tuple(sorted(points, key=lambda p: p.effort)), combined.get("probe_sha256")
