"""Effort as one policy on hand-made traces (calibration/combined.py)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.calibration import combined, length, lynx, risk
from thinkctl.calibration.traces import Events, Traces
from thinkctl.probes import effort_table
from thinkctl.probes.effort_table import CombinedPoint


def _traces(rng, n: int) -> Traces:
    trace, position, label = [], [], []
    lengths = rng.integers(8, 80, n)
    for t in range(n):
        for pos in np.sort(rng.choice(lengths[t], size=rng.integers(0, 5), replace=False)):
            trace += [t]
            position += [int(pos)]
            label += [int(rng.choice([0, 1, 1]))]
    events = Events(np.array(trace, int), np.array(position, int), np.array(label, int),
                    np.zeros((len(trace), 1), np.float32))  # fmt: skip
    return Traces(np.arange(n), lengths, rng.integers(0, 2, n), np.ones(n, bool), events)


def test_the_first_of_the_exit_and_the_budget_decides():
    # One trace of 100 tokens, right; cues at 19 (score 0.9, right) and 59 (0.3, wrong).
    ev = Events(np.array([0, 0]), np.array([19, 59]), np.array([1, 0]), np.zeros((2, 1)))
    tr = Traces(np.array([0]), np.array([100]), np.array([1]), np.array([True]), ev)
    table = risk.exit_table(tr, np.array([0]), np.array([0.9, 0.3]), np.array([np.inf, 0.5]))
    rp = length.Replay.of(tr)
    idx = np.array([0])
    # The probe exits at 20 tokens, within a budget of 50: its (right) answer.
    assert [x.tolist() for x in combined.replay(table, rp, idx, 1, np.array([50.0]))] == [
        [True], [20.0]]  # fmt: skip
    # A budget of 10 cuts before the probe's cue: no cue before it, wrong.
    assert [x.tolist() for x in combined.replay(table, rp, idx, 1, np.array([10.0]))] == [
        [False], [10.0]]  # fmt: skip
    # No exit (column 0): the budget of 70 cuts after the cue at 59 (wrong).
    assert [x.tolist() for x in combined.replay(table, rp, idx, 0, np.array([70.0]))] == [
        [False], [70.0]]  # fmt: skip


def _fit(seed: int, n: int):
    rng = np.random.default_rng(seed)
    tr = _traces(rng, n)
    p = rng.random(len(tr.events.trace)).round(2)
    grid = risk.threshold_grid(p, size=20)
    idx = np.arange(n)
    table = risk.exit_table(tr, idx, p, grid)
    rp = length.Replay.of(tr)
    pred = np.log1p(np.stack([tr.thinking_tokens * rng.uniform(0.5, 1.5, n)] * 2, axis=1))
    caps = effort_table.fit(tr.thinking_tokens)["points"]
    inner = [(e, b) for e, b in caps if 0 < e < 1]
    query = length.fit_policy(rp, idx, pred, inner, n_bins=3)
    _, losses = table.per_question(table.loss)
    certified = {eps: risk.certified(losses, eps, 0.1) for eps in (0.05, 0.1, 0.3)}
    points = lynx.effort_points(table, certified, list(effort_table.GRID))
    return table, rp, idx, pred, query, points, certified


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(4, 40))
def test_the_choice_dominates_either_mechanism_and_thinking_rises_with_effort(seed, n):
    table, rp, idx, pred, query, points, certified = _fit(seed, n)
    chosen, rows = combined.fit(table, rp, idx, pred, query, points, certified)
    assert [c.effort for c in chosen] == [r["effort"] for r in rows] == [
        e for e in effort_table.GRID if 0 < e < 1]  # fmt: skip
    tokens = [r["combined_thinking_tokens"] for r in rows]
    assert tokens == sorted(tokens)
    floor = 0.0
    for r in rows:
        single = [(r[f"{k}_accuracy"], -r[f"{k}_thinking_tokens"]) for k in ("lynx_effort",
                                                                          "effort_query")]  # fmt: skip
        acc, neg_tokens = max(single)
        if -neg_tokens >= floor - 0.05:  # the better one was a candidate (rounding aside)
            assert r["dominates"]
            assert r["combined_accuracy"] >= acc - 1e-4
            assert r["combined_thinking_tokens"] <= -neg_tokens + 0.05
        floor = r["combined_thinking_tokens"]
    # Measured again as fixed points on the same traces, the choice replays to itself.
    _, again = combined.fit(table, rp, idx, pred, query, points, certified, fixed=chosen)
    assert [r["combined_accuracy"] for r in again] == [r["combined_accuracy"] for r in rows]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(4, 30))
def test_a_threshold_is_named_with_the_risk_it_is_certified_at(seed, n):
    table, rp, idx, pred, query, points, certified = _fit(seed, n)
    chosen, _ = combined.fit(table, rp, idx, pred, query, points, certified)
    for c in chosen:
        assert c.query_effort is None or c.cap is None
        if c.threshold is None:
            assert c.epsilon is None
        elif c.epsilon is not None:
            col = int(np.flatnonzero(table.thresholds == c.threshold)[0])
            assert col < certified[c.epsilon]


def test_the_points_round_trip_through_the_table():
    points = [CombinedPoint(0.5, 0.7, 0.01, 0.5, None), CombinedPoint(0.25, None, None, None, 40)]
    table = {"combined": {"probe_sha256": "ab" * 32, "points": [p.as_json() for p in points]}}
    read, sha = effort_table.combined_points(table)
    assert read == tuple(sorted(points, key=lambda p: p.effort)) and sha == "ab" * 32
    assert effort_table.combined_points({}) == ((), None)
