"""Effort as one policy: a LYNX exit that exits early and a budget that caps late, chosen
together on calibration traces (`thinkctl calibrate`, when it fits a probe and a length
predictor in one run).

A candidate is a pair: a column of the risk exit table (calibration/risk.py; column 0
never exits, the others exit at the first cue scoring above the column's threshold) and a
budget per trace (none, a per-query point of calibration/length.py, or one cap). A trace
exits where the first of the two fires: at the probe's cue when that comes within the
budget (its forced answer there), else at the budget (`length.Replay`, the way the server
cuts).

The two single mechanisms at effort e are candidates too: `lynx_effort` (the probe's
effort point, calibration/lynx.effort_points: its threshold and cap) and `effort_query`
(the per-query point alone). Per e, by increasing e, the chosen pair answers best on the
calibration traces among those that spend no more than the better of the two (ties: the
one that spends less), and no less than the previous effort's choice, so that thinking
never falls as effort rises. The better single mechanism is always among them unless the
monotone floor excludes it (recorded as `dominates: false`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinkctl.calibration.length import Replay
from thinkctl.calibration.risk import ExitTable
from thinkctl.probes.effort_table import CombinedPoint, QueryBudget


@dataclass(frozen=True)
class _Budget:
    query_effort: float | None = None  # a per-query point's effort
    cap: int | None = None  # or one cap; neither: no cap


@dataclass(frozen=True)
class _Outcome:
    column: int
    budget: _Budget
    accuracy: float
    tokens: float


def replay(
    table: ExitTable, rp: Replay, idx: np.ndarray, column: int, budgets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correctness and thinking tokens of traces `idx` (the rows of `table`, in order) when
    LYNX exits at `column`'s threshold and thinking is capped at `budgets` (per trace)."""
    lynx_ok, lynx_tokens = table.correct[:, column], table.tokens[:, column]
    cut_ok, cut_tokens = rp.run(idx, budgets)
    first = lynx_tokens <= budgets  # the probe's exit (or the natural end) comes first
    return np.where(first, lynx_ok, cut_ok), np.where(first, lynx_tokens, cut_tokens)


def fit(
    table: ExitTable,
    rp: Replay,
    idx: np.ndarray,
    pred: np.ndarray,
    query: list[QueryBudget],
    probe_points: list[dict],
    certified: dict[float, int],
    fixed: list[CombinedPoint] | None = None,
) -> tuple[list[CombinedPoint], list[dict]]:
    """Combined points for the efforts of `probe_points` strictly between 0 and 1, chosen
    on traces `idx` (`table`'s rows; `pred`: (t, 2) log-token predictions), and what they
    and the two single mechanisms do there (the report's rows). With `fixed`, those
    points are measured instead of chosen (the held-out questions)."""
    by_effort = {q.effort: q for q in query}
    columns = {0} | {max(n - 1, 0) for n in certified.values()}
    columns |= {_column(table, p["threshold"]) for p in probe_points}
    budgets = [_Budget()] + [_Budget(query_effort=q.effort) for q in query]
    budgets += [_Budget(cap=int(p["max_thinking_tokens"])) for p in probe_points
                if p["max_thinking_tokens"] is not None]  # fmt: skip
    cache: dict[tuple[int, _Budget], _Outcome] = {}

    def outcome(column: int, budget: _Budget) -> _Outcome:
        key = (column, budget)
        if key not in cache:
            if budget.query_effort is not None:
                per_trace = by_effort[budget.query_effort].budgets_for(pred[idx, 0])
            else:
                cap = np.inf if budget.cap is None else budget.cap
                per_trace = np.full(len(idx), cap, np.float64)
            ok, tokens = replay(table, rp, idx, column, per_trace)
            cache[key] = _Outcome(column, budget, float(ok.mean()), float(tokens.mean()))
        return cache[key]

    candidates = [] if fixed else [outcome(c, b) for c in sorted(columns) for b in budgets]
    points, rows, floor = [], [], 0.0
    for p in sorted(probe_points, key=lambda p: p["effort"]):
        e = p["effort"]
        if not 0 < e < 1 or e not in by_effort:
            continue
        cap = p["max_thinking_tokens"]
        lynx = outcome(_column(table, p["threshold"]), _Budget(cap=cap))
        alone = outcome(0, _Budget(query_effort=e))
        better = max((lynx, alone), key=lambda o: (o.accuracy, -o.tokens))
        limit = max(better.tokens, floor)
        if fixed is None:
            feasible = [o for o in candidates if floor - 1e-9 <= o.tokens <= limit + 1e-9]
            chosen = max(feasible, key=lambda o: (o.accuracy, -o.tokens))
        else:
            f = next(f for f in fixed if f.effort == e)
            chosen = outcome(_column(table, f.threshold), _Budget(f.query_effort, f.cap))
        floor = chosen.tokens
        points.append(_point(e, chosen, table, certified))
        rows.append({
            "effort": e,
            "combined_accuracy": round(chosen.accuracy, 4),
            "combined_thinking_tokens": round(chosen.tokens, 1),
            "lynx_effort_accuracy": round(lynx.accuracy, 4),
            "lynx_effort_thinking_tokens": round(lynx.tokens, 1),
            "effort_query_accuracy": round(alone.accuracy, 4),
            "effort_query_thinking_tokens": round(alone.tokens, 1),
            "dominates": chosen.accuracy >= better.accuracy and chosen.tokens <= better.tokens,
            "policy": points[-1].as_json(),
        })  # fmt: skip
    return points, rows


def _column(table: ExitTable, threshold: float | None) -> int:
    return 0 if threshold is None else int(np.flatnonzero(table.thresholds == threshold)[0])


def _point(
    effort: float, o: _Outcome, table: ExitTable, certified: dict[float, int]
) -> CombinedPoint:
    threshold = None if o.column == 0 else float(table.thresholds[o.column])
    safe = [eps for eps, n in certified.items() if o.column < n]
    epsilon = min(safe) if safe and threshold is not None else None
    return CombinedPoint(effort, threshold, epsilon, o.budget.query_effort, o.budget.cap)
