"""Offline LYNX replay, exit floors and the effort map, on hand-made traces."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from calibration import lynx
from calibration.traces import Events, Traces
from probes.conformal import Calibration


def make_traces(cues: list[list[tuple[int, int]]], lengths: list[int]) -> Traces:
    """cues[t]: (position, label) of trace t's cue events; lengths: natural thinking."""
    rows = [(t, pos, lab) for t, evs in enumerate(cues) for pos, lab in evs]
    trace, position, label = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    events = Events(trace, position, label, np.zeros((len(rows), 1), np.float32))
    n = len(lengths)
    return Traces(np.arange(n), np.array(lengths), np.ones(n, int), np.ones(n, bool), events)


TR = make_traces([[(9, 1), (19, 1), (29, 1)], [(4, 0), (14, 1)]], [40, 30])
ALL = np.arange(2)


def test_replay_exits_at_the_first_exiting_cue_at_or_above_the_floor():
    exits = np.ones(5, bool)
    assert lynx.replay(TR, ALL, exits).mean_thinking_tokens == (10 + 5) / 2
    # trace 0 exits at its cue with 10 tokens (cue included); trace 1's cue at 5 is held
    floored = lynx.replay(TR, ALL, exits, floor=10)
    assert floored.mean_thinking_tokens == (10 + 15) / 2 and floored.accuracy == 1.0
    assert lynx.replay(TR, ALL, exits, floor=31).mean_thinking_tokens == (40 + 30) / 2


def test_floor_for_is_the_smallest_floor_reaching_the_target():
    exits = np.ones(5, bool)
    assert lynx.floor_for(TR, ALL, exits, target=12.5) == 6  # (10 + 15) / 2 >= 12.5
    assert lynx.floor_for(TR, ALL, exits, target=7.5) == 0
    assert lynx.floor_for(TR, ALL, exits, target=35) == 31  # no exit left: natural


# Per trace: distinct cue positions with "exits here" flags, and the natural end after them.
trace_specs = st.lists(
    st.tuples(
        st.dictionaries(st.integers(0, 99), st.booleans(), min_size=1, max_size=6),
        st.integers(1, 30),
    ),
    min_size=1,
    max_size=12,
)


@given(trace_specs, st.integers(0, 130))
def test_a_higher_floor_never_thinks_less(spec, floor):
    cues = [sorted(evs.items()) for evs, _ in spec]
    lengths = [max(evs) + 1 + extra for evs, extra in spec]
    tr = make_traces([[(pos, 1) for pos, _ in c] for c in cues], lengths)
    exits = np.array([flag for c in cues for _, flag in c])
    ids = np.arange(len(lengths))
    lo = lynx.replay(tr, ids, exits, floor).mean_thinking_tokens
    assert lynx.replay(tr, ids, exits, floor + 1).mean_thinking_tokens >= lo


def synthetic_set(n: int = 400):
    """Every trace: cues at 19, 39, 59 (a pass of 20 tokens each), natural end at 80;
    ~120 first cues are wrong exits, enough class-0 events for delta = 0.01."""
    rng = np.random.default_rng(0)
    cues = [[(19, int(rng.random() < 0.7)), (39, 1), (59, 1)] for _ in range(n)]
    tr = make_traces(cues, [80] * n)
    y = (tr.events.label == 1).astype(int)
    p = np.clip(0.5 * y + rng.uniform(0, 0.5, len(y)), 0, 1)  # class 1 scores above 0.5
    return tr, p, y


def test_high_efforts_get_a_floor_and_think_longer():
    tr, p, y = synthetic_set()
    cal = Calibration.from_probs(p, y)
    ids = np.arange(len(tr.question))
    points = lynx.effort_points(cal, tr, ids, p, [0.01, 0.1], [0.0, 0.3, 0.5, 0.8, 1.0])
    by_e = {pt["effort"]: pt for pt in points}
    assert by_e[0.0]["max_thinking_tokens"] == 0 and by_e[1.0]["delta"] is None
    safest = lynx.replay(tr, ids, cal.thresholds(0.01).exits_many(p)).mean_thinking_tokens
    assert safest < 0.5 * 80  # so 0.8 needs a floor to think longer
    high = by_e[0.8]
    assert high["delta"] == 0.01 and high["min_thinking_tokens"] > 0
    exits = cal.thresholds(0.01).exits_many(p)
    floor = high["min_thinking_tokens"]
    got = lynx.replay(tr, ids, exits, floor).mean_thinking_tokens
    one_less = lynx.replay(tr, ids, exits, floor - 1).mean_thinking_tokens
    assert got >= 0.8 * 80 > one_less  # the smallest floor that thinks 0.8 x natural
    assert by_e[0.3]["min_thinking_tokens"] == 0  # within a grid step: no floor


def test_the_floor_goes_on_the_delta_chosen_when_the_safest_never_exits():
    tr, p, y = synthetic_set()
    cal = Calibration.from_probs(p, y)
    ids = np.arange(len(tr.question))
    never = 1 / (2 * (cal.n0 + 1))  # below 1/(n0 + 1): no class-0 score can be excluded
    (point,) = lynx.effort_points(cal, tr, ids, p, [never, 0.1], [0.8])
    assert point["delta"] == 0.1 and point["min_thinking_tokens"] > 0
    exits = cal.thresholds(0.1).exits_many(p)
    got = lynx.replay(tr, ids, exits, point["min_thinking_tokens"]).mean_thinking_tokens
    assert got >= 0.8 * 80


def test_resplits_report_mean_spread_and_how_often_one_split_passes():
    rng = np.random.default_rng(1)
    n = 3000
    question = np.arange(n) // 3
    y = (rng.random(n) < 0.85).astype(int)
    pool = np.ones(n, bool)
    separable = np.where(y == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, n)
    (mean, sd, share), = lynx.resplit_event_rates(separable, y, question, pool, [0.1],
                                                  n_splits=20).values()  # fmt: skip
    assert mean == 0 and sd == 0 and share == 1  # class 0 never scores above class 1
    noise = rng.random(n)  # scores say nothing: class 0 exits at about delta
    (mean, sd, share), = lynx.resplit_event_rates(noise, y, question, pool, [0.1],
                                                  n_splits=50).values()  # fmt: skip
    assert 0.05 < mean < 0.15 and sd > 0 and 0 < share < 1


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
