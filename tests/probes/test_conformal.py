"""Split conformal maths (probes/conformal.py) with hand-made and generated scores."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.probes.conformal import Calibration, Thresholds, quantile


def test_quantile_is_the_ceil_n_plus_1_rank():
    scores = np.arange(1, 20) / 20  # 19 scores: 0.05 .. 0.95
    # (19 + 1) * 0.9 = 18 -> the 18th smallest
    assert quantile(scores, 0.1) == scores[17]
    # (19 + 1) * 0.95 = 19 -> the largest
    assert quantile(scores, 0.05) == scores[18]
    # (19 + 1) * 0.99 = 19.8 -> rank 20 > n: the class cannot be excluded
    assert quantile(scores, 0.01) == math.inf


def test_prediction_sets_and_exit_rule():
    th = Thresholds(delta=0.1, q0=0.6, q1=0.5)
    assert th.prediction_set(0.9) == {1}  # 1 - 0.9 <= 0.5 and 0.9 > 0.6
    assert th.exits(0.9)
    assert th.prediction_set(0.55) == {0, 1}  # ambiguous: no exit
    assert not th.exits(0.55)
    assert th.prediction_set(0.3) == {0}
    assert not th.exits(0.3)
    assert list(th.exits_many(np.array([0.9, 0.55, 0.3]))) == [True, False, False]


def test_too_few_class0_events_never_exit():
    cal = Calibration.from_probs(np.array([0.1, 0.2, 0.9, 0.95]), np.array([0, 0, 1, 1]))
    assert cal.n0 == 2 and cal.min_delta() == 1 / 3
    assert not cal.thresholds(0.05).exits(0.999)


@settings(max_examples=60, deadline=None)
@given(
    n0=st.integers(20, 300),
    delta=st.sampled_from([0.05, 0.1, 0.2]),
    seed=st.integers(0, 10_000),
)
def test_class0_exits_at_most_delta_on_average(n0, delta, seed):
    """Exchangeable class-0 scores: averaged over many calibration/test draws, the exit
    rate on fresh class-0 events stays within delta (the marginal guarantee)."""
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(200):
        p_cal = rng.beta(2, 3, size=n0)  # probe scores of class-0 events
        p_new = rng.beta(2, 3, size=50)
        cal = Calibration.from_probs(
            np.r_[p_cal, [0.99] * 5], np.r_[np.zeros(n0, int), np.ones(5, int)]
        )
        th = cal.thresholds(delta)
        rates.append((p_new > th.q0).mean())
    # The guarantee holds in expectation; 200 draws of 50 leave ~1% standard error.
    assert np.mean(rates) <= delta + 0.03


@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.floats(0.01, 0.99))
def test_quantile_is_a_score_or_infinite(scores, delta):
    q = quantile(np.array(scores), delta)
    assert q == math.inf or q in scores


def test_grouped_class_0_scores_each_event_by_its_questions_highest():
    p = np.array([0.2, 0.7, 0.4, 0.9, 0.1, 0.3])
    y = np.array([0, 0, 0, 1, 0, 1])
    question = np.array([1, 1, 2, 2, 3, 3])
    cal = Calibration.from_probs(p, y, question)
    assert cal.scores0.tolist() == [0.1, 0.4, 0.7, 0.7]  # question 1's two events: its max
    assert np.allclose(cal.scores1, Calibration.from_probs(p, y).scores1)
