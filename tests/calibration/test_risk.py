"""The answer-level risk control (calibration/risk.py): its maths on synthetic losses with
a known true risk, and its replay against a brute-force one."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.calibration import risk
from thinkctl.calibration.traces import Events, Traces

DRAWS = 300


def _tolerance(alpha: float) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / DRAWS) + 1 / DRAWS


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(20, 400),
    epsilon=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
    alpha=st.sampled_from([0.05, 0.1, 0.2]),
    seed=st.integers(0, 2**31),
)
def test_the_p_value_is_valid_at_the_boundary(n, epsilon, alpha, seed):
    """Under R = epsilon (the hardest null), P(p <= alpha) <= alpha."""
    rng = np.random.default_rng(seed)
    means = rng.binomial(n, epsilon, size=DRAWS) / n
    rejected = np.mean([risk.hb_p_value(m, n, epsilon) <= alpha for m in means])
    assert rejected <= alpha + _tolerance(alpha)


@settings(max_examples=30, deadline=None)
@given(
    curve=st.lists(st.floats(0, 0.3), min_size=2, max_size=12),
    n=st.integers(50, 600),
    epsilon=st.sampled_from([0.01, 0.02, 0.05, 0.1]),
    alpha=st.sampled_from([0.05, 0.1, 0.2]),
    seed=st.integers(0, 2**31),
)
def test_the_chosen_threshold_exceeds_epsilon_in_at_most_alpha_of_draws(
    curve, n, epsilon, alpha, seed
):
    """True risks per threshold (safest first, any shape: not monotone), losses drawn per
    question; the chosen column's true risk > epsilon in at most alpha of the draws."""
    true = np.r_[0.0, curve]  # column 0 never exits: no loss
    rng = np.random.default_rng(seed)
    over = 0
    for _ in range(DRAWS):
        # One latent draw per question keeps its losses at different thresholds correlated.
        u = rng.random((n, 1))
        losses = (u < true[None, :]).astype(float)
        col = max(risk.certified(losses, epsilon, alpha) - 1, 0)
        over += true[col] > epsilon
    assert over / DRAWS <= alpha + _tolerance(alpha)
    if true.max() <= epsilon:  # met trivially: whatever is chosen, never above epsilon
        assert over == 0


@given(
    k=st.integers(1, 20),
    epsilon=st.sampled_from([0.005, 0.01, 0.05]),
    alpha=st.sampled_from([0.05, 0.1]),
)
def test_no_loss_anywhere_certifies_every_threshold_given_enough_questions(k, epsilon, alpha):
    n = math.ceil(math.log(alpha) / math.log(1 - epsilon)) + 1
    assert risk.certified(np.zeros((n, k)), epsilon, alpha) == k
    # ...and with too few questions even a lossless threshold is not certified.
    assert risk.certified(np.zeros((max(n // 4, 1), k)), epsilon, alpha) == 0


def _traces(rng, n_traces: int) -> Traces:
    trace, position, label = [], [], []
    lengths = rng.integers(5, 40, n_traces)
    for t in range(n_traces):
        cues = np.sort(rng.choice(lengths[t], size=rng.integers(0, 4), replace=False))
        for pos in cues:
            trace.append(t)
            position.append(int(pos))
            label.append(int(rng.choice([-1, 0, 1, 1])))
    m = len(trace)
    events = Events(np.array(trace, int), np.array(position, int), np.array(label, int),
                    np.zeros((m, 1), np.float32))  # fmt: skip
    return Traces(rng.integers(0, 5, n_traces), lengths, rng.integers(0, 2, n_traces),
                  np.ones(n_traces, int), events)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12))
def test_the_table_replays_each_threshold_as_a_loop_would(seed, n):
    rng = np.random.default_rng(seed)
    tr = _traces(rng, n)
    p = rng.random(len(tr.events.trace)).round(1)  # ties on purpose
    grid = np.r_[np.inf, np.sort(np.unique(np.r_[rng.random(6).round(1), 0.5]))[::-1]]
    ids = np.sort(rng.choice(n, size=rng.integers(1, n + 1), replace=False))
    table = risk.exit_table(tr, ids, p, grid)
    ev = tr.events
    for row, t in enumerate(ids):
        mine = sorted((ev.position[j], j) for j in np.flatnonzero(ev.trace == t))
        for k, g in enumerate(grid):
            first = next((j for _, j in mine if p[j] > g), None)
            nat = tr.correct[t]
            right = nat if first is None else int(ev.label[first] == 1)
            spent = tr.thinking_tokens[t] if first is None else ev.position[first] + 1
            assert table.correct[row, k] == right
            assert table.tokens[row, k] == spent
            assert table.loss[row, k] == nat * (1 - right)
    qs, means = table.per_question(table.loss)
    for i, q in enumerate(qs):
        assert np.allclose(means[i], table.loss[tr.question[ids] == q].mean(axis=0))
