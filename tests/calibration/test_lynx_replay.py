"""Offline LYNX replay, exit floors and the effort map, on hand-made traces."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from thinkctl.calibration import lynx, risk
from thinkctl.calibration.traces import Events, Traces
from thinkctl.probes.conformal import Calibration


def make_traces(cues: list[list[tuple[int, int]]], lengths: list[int]) -> Traces:
    """cues[t]: (position, label) of trace t's cue events; lengths: natural thinking."""
    rows = [(t, pos, lab) for t, evs in enumerate(cues) for pos, lab in evs]
    trace, position, label = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    events = Events(trace, position, label, np.zeros((len(rows), 1), np.float32))
    n = len(lengths)
    return Traces(np.arange(n), np.array(lengths), np.ones(n, int), np.ones(n, bool), events)


TR = make_traces([[(9, 1), (19, 1), (29, 1)], [(4, 0), (14, 1)]], [40, 30])
ALL = np.arange(2)


def test_replay_exits_at_the_first_exiting_cue():
    exits = np.ones(5, bool)
    assert lynx.replay(TR, ALL, exits).mean_thinking_tokens == (10 + 5) / 2
    later = np.array([False, True, True, False, True])  # trace 0 at 20 tokens, trace 1 at 15
    r = lynx.replay(TR, ALL, later)
    assert r.mean_thinking_tokens == (20 + 15) / 2 and r.accuracy == 1.0


def synthetic_set(n: int = 400):
    """Every trace: cues at 19, 39, 59 (a pass of 20 tokens each), natural end at 80;
    ~120 first cues are wrong exits."""
    rng = np.random.default_rng(0)
    cues = [[(19, int(rng.random() < 0.7)), (39, 1), (59, 1)] for _ in range(n)]
    tr = make_traces(cues, [80] * n)
    y = (tr.events.label == 1).astype(int)
    p = np.clip(0.5 * y + rng.uniform(0, 0.5, len(y)), 0, 1)  # class 1 scores above 0.5
    return tr, p, y


EFFORTS = [round(0.05 * i, 2) for i in range(21)]


def test_the_effort_map_spends_about_effort_times_natural_and_never_more_as_effort_falls():
    tr, p, _ = synthetic_set()
    ids = np.arange(len(tr.question))
    table = risk.exit_table(tr, ids, p, risk.threshold_grid(p, 200))
    points = lynx.effort_points(table, {0.01: 5, 0.05: 50}, EFFORTS)
    by_e = {pt["effort"]: pt for pt in points}
    assert by_e[0.0]["max_thinking_tokens"] == 0 and by_e[1.0]["threshold"] is None
    spent = [lynx.effort_replay(table, pt)["mean_thinking_tokens"] for pt in points]
    assert spent == sorted(spent)  # monotone in effort
    for pt, tokens in zip(points, spent, strict=True):
        if 0 < pt["effort"] < 1 and pt["max_thinking_tokens"] is None:
            assert tokens <= pt["effort"] * 80 + 1e-9
    cert = [pt["max_accuracy_loss"] for pt in points if pt["threshold"] is not None]
    assert set(cert) <= {0.01, 0.05, None}


@given(st.integers(0, 2**31))
def test_effort_maps_are_monotone_by_construction_on_random_traces(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    cues = [[(int(pos), int(rng.random() < 0.8)) for pos in
             sorted(rng.choice(60, size=rng.integers(1, 5), replace=False))]
            for _ in range(n)]  # fmt: skip
    tr = make_traces(cues, [max(pos for pos, _ in c) + 1 + int(rng.integers(0, 30)) for c in cues])
    p = rng.random(len(tr.events.trace))
    ids = np.arange(n)
    table = risk.exit_table(tr, ids, p, risk.threshold_grid(rng.random(50), 30))
    points = lynx.effort_points(table, {}, EFFORTS)
    spent = [lynx.effort_replay(table, pt)["mean_thinking_tokens"] for pt in points]
    assert all(a <= b + 1e-9 for a, b in zip(spent, spent[1:], strict=False))


def test_resplits_report_mean_spread_and_how_often_one_split_passes():
    rng = np.random.default_rng(1)
    n = 3000
    question = np.arange(n) // 3
    y = (rng.random(n) < 0.85).astype(int)
    pool = np.ones(n, bool)
    separable = np.where(y == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, n)
    (r,) = lynx.resplit_event_rates(separable, y, question, pool, [0.1], n_splits=20).values()
    assert r["event_mean"] == r["event_sd"] == r["question_mean"] == 0  # class 0 never high
    assert r["share_within_delta"] == 1
    noise = rng.random(n)  # scores say nothing: a question's class-0 max exits at about delta
    (r,) = lynx.resplit_event_rates(noise, y, question, pool, [0.1], n_splits=50).values()
    assert 0.05 < r["question_mean"] < 0.15 and r["event_sd"] > 0
    assert r["event_mean"] < r["question_mean"]  # an event exits only when its max does


# Per trace: cue events (distinct positions, forced-exit label, probe score), the natural
# end after them, and whether the natural answer is right.
scored_specs = st.lists(
    st.tuples(
        st.dictionaries(
            st.integers(0, 99), st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=5
        ),  # fmt: skip
        st.integers(1, 30),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@given(scored_specs, st.sampled_from([0.0, 0.1, 0.3]))
def test_ceiling_is_the_best_single_threshold_within_the_accuracy_loss(spec, loss):
    cues = [sorted(evs.items()) for evs, _, _ in spec]
    tr = make_traces([[(pos, int(ok)) for pos, (ok, _) in c] for c in cues],
                     [max(evs) + 1 + extra for evs, extra, _ in spec])  # fmt: skip
    tr.correct[:] = [int(right) for _, _, right in spec]
    p = np.array([score for c in cues for _, (_, score) in c])
    ids = np.arange(len(spec))
    natural = lynx.replay(tr, ids, np.zeros(len(p), bool))
    best = lynx.ceiling(tr, ids, p, max_loss=loss)
    for t in [-1.0, *np.unique(p)]:  # every distinct exit rule "score > t"
        r = lynx.replay(tr, ids, p > t)
        if r.accuracy >= natural.accuracy - loss - 1e-9:
            assert (
                1 - r.mean_thinking_tokens / natural.mean_thinking_tokens <= best["savings"] + 1e-9
            )
    if best["threshold"] is not None:  # what it reports is what its threshold replays to
        r = lynx.replay(tr, ids, p > best["threshold"])
        assert np.isclose(r.mean_thinking_tokens, best["mean_thinking_tokens"])
        assert np.isclose(r.accuracy, best["accuracy"])


def test_no_delta_saves_more_than_the_ceiling_at_its_accuracy():
    tr, p, y = synthetic_set()
    ids = np.arange(len(tr.question))
    cal = Calibration.from_probs(p, y)
    natural = lynx.replay(tr, ids, np.zeros(len(p), bool))
    best = lynx.ceiling(tr, ids, p, max_loss=0.05)
    assert best["savings"] > 0
    for d in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3):
        r = lynx.replay(tr, ids, cal.thresholds(d).exits_many(p))
        if r.accuracy >= natural.accuracy - 0.05:
            assert 1 - r.mean_thinking_tokens / natural.mean_thinking_tokens <= best["savings"]
