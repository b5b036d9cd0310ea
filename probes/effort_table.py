"""The effort table: effort e in [0, 1] -> a thinking budget giving ~e x natural length.

Following e1 (arXiv 2510.27042), effort is a fraction of the model's *natural* thinking
length. On a calibration set sampled like the serving default, with natural thinking
lengths L_i, the budget for effort e is the smallest b with

    mean_i min(L_i, b)  >=  e * mean_i L_i

(a cap at b leaves short traces alone and cuts long ones to b), so on that set effort e
spends e of the natural mean. Budgets are non-decreasing in e by construction.

Written by calibration (`python -m calibration.effort`) as `effort.json` in the model
folder; read by the server. Plain JSON, never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EFFORT_FILE = "effort.json"
GRID_STEP = 0.05
GRID = tuple(round(i * GRID_STEP, 2) for i in range(21))  # 0, 0.05, ..., 1
# OpenAI's reasoning_effort levels as fractions of natural thinking; `max` is uncapped.
LEVELS = {"none": 0.0, "minimal": 0.1, "low": 0.25, "medium": 0.5, "high": 0.75, "xhigh": 0.9}


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
