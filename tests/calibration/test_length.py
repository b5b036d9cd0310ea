"""Length targets, predictors and per-query effort on hand-made traces (calibration/length.py)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.calibration import length
from thinkctl.calibration.traces import Events, Traces
from thinkctl.probes import effort_table


def traces(lengths, correct, cues) -> Traces:
    """`cues`: (trace, output position, label) triples."""
    t, pos, lab = np.array(cues, dtype=np.int64).reshape(-1, 3).T
    n = len(lengths)
    events = Events(t, pos, lab, np.zeros((len(t), 1), np.float32))
    return Traces(np.arange(n), np.array(lengths), np.array(correct), np.ones(n, bool), events)


def test_a_budget_cuts_at_the_last_cue_before_it():
    # Trace 0: 100 tokens, right; cues at 9 (wrong), 29 (right), 59 (wrong).
    # Trace 1: 50 tokens, wrong, no cue. Trace 2: 20 tokens, right.
    tr = traces([100, 50, 20], [1, 0, 1], [(0, 9, 0), (0, 29, 1), (0, 59, 0)])
    rp = length.Replay.of(tr)
    idx = np.arange(3)
    ok, spend = rp.run(idx, np.array([35.0, 80.0, 10.0]))
    # 0: cut at 35, its last cue (30 tokens thought) answers right; 1: natural (wrong);
    # 2: cut at 10, no cue before: wrong.
    assert ok.tolist() == [True, False, False] and spend.tolist() == [35, 50, 10]
    ok, _ = rp.run(idx, np.array([29.0, 50.0, 20.0]))  # 29 < 30 tokens: the cue at 9 (wrong)
    assert ok.tolist() == [False, False, True]
    ok, _ = rp.run(idx, np.array([np.inf, np.inf, np.inf]))
    assert ok.tolist() == [True, False, True]
    np.testing.assert_array_equal(rp.sufficient(), [30, 50, 20])


def test_grid_exits_between_cues_count_like_cues():
    tr = traces([100], [1], [(0, 59, 1)])
    tr.grid = Events(np.array([0, 0]), np.array([19, 39]), np.array([0, 1]), np.zeros((2, 0)))
    rp = length.Replay.of(tr)
    ok, _ = rp.run(np.array([0, 0, 0]), np.array([30.0, 45.0, 70.0]))
    assert ok.tolist() == [False, True, True]  # the grid exit after 40 tokens answers right
    np.testing.assert_array_equal(rp.sufficient(), [40])


@st.composite
def trace_sets(draw):
    n = draw(st.integers(4, 30))
    lengths = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    correct = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    cues = []
    for i, L in enumerate(lengths):
        for p in sorted(draw(st.sets(st.integers(0, L - 1), max_size=4))):
            cues.append((i, p, draw(st.integers(-1, 1))))
    return traces(lengths, correct, cues)


@settings(max_examples=30, deadline=None)
@given(tr=trace_sets(), seed=st.integers(0, 1000))
def test_per_query_effort_is_never_worse_than_the_global_cap_where_it_was_chosen(tr, seed):
    rp = length.Replay.of(tr)
    idx = np.arange(len(tr.question))
    pred = np.log1p(np.stack([rp.natural, rp.sufficient()], 1))
    pred += np.random.default_rng(seed).normal(0, 0.3, pred.shape)  # an imperfect predictor
    table = effort_table.fit(tr.thinking_tokens, grid=(0.3, 0.5, 0.7))
    grid = [(e, b) for e, b in table["points"]]
    points = length.fit_policy(rp, idx, pred, grid, n_bins=3)
    for q, (e, cap) in zip(points, grid, strict=True):
        g_ok, g_spend = rp.run(idx, np.full(len(idx), cap, float))
        ok, spend = rp.run(idx, q.budgets_for(pred[:, 0]))
        assert q.effort == e
        assert ok.mean() >= g_ok.mean()
        assert spend.mean() <= g_spend.mean() + 1e-9


def test_the_predictor_ranks_lengths_it_can_read_and_picks_the_block_that_holds_them():
    rng = np.random.default_rng(0)
    n, hidden = 600, 8
    y = rng.uniform(2, 6, size=(n, 2))
    block1 = rng.normal(size=(n, hidden))  # noise
    block2 = rng.normal(size=(n, hidden)) * 0.1
    block2[:, 0] += y[:, 0]  # natural length, readable from block 2 only
    block2[:, 1] += y[:, 1]
    feats = np.concatenate([block1, block2], axis=1)
    split = {k: np.zeros(n, bool) for k in ("train", "cal", "test")}
    split["train"][:300], split["cal"][300:450], split["test"][450:] = True, True, True
    pred, quality = length.fit_predictor(feats, y, split, (1, 2), hidden, {})
    assert pred.layers == (2,)
    assert quality["spearman_test"]["natural"] > 0.95
    assert quality["spearman_test"]["sufficient"] > 0.95
    got = pred.predict(feats[split["test"]][:, pred.columns((1, 2))])
    assert np.corrcoef(got[:, 0], y[split["test"], 0])[0, 1] > 0.95


def test_a_shard_keeps_the_answer_lengths_and_an_older_one_reads_as_unknown(tmp_path):
    from safetensors.numpy import load_file, save_file

    from thinkctl.calibration import traces

    n = 3
    empty = Events(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros((0, 2), np.float32))  # fmt: skip
    tr = Traces(np.arange(n), np.array([5, 6, 7]), np.ones(n, np.int64), np.ones(n, np.int64),
                empty, np.zeros((n, 2), np.float32), empty, np.array([4, -1, 9]))  # fmt: skip
    traces.save(tr, tmp_path / "a.safetensors")
    assert traces.load(tmp_path / "a.safetensors").answer_tokens.tolist() == [4, -1, 9]
    older = load_file(tmp_path / "a.safetensors")
    del older["answer_tokens"]
    save_file(older, tmp_path / "b.safetensors")
    assert traces.load(tmp_path / "b.safetensors").answer_tokens.tolist() == [-1, -1, -1]
