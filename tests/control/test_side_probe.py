"""DEER and Dynasor's pure logic (server/side_probe.py): when to try, what a trial says."""

import math

from hypothesis import given
from hypothesis import strategies as st

from thinkctl.server.side_probe import SideProber, SideProbeSpec, Trial, answer_of, confidence_of

CUE = 7
CLOSE = (2, 3)


def spec(**kw) -> SideProbeSpec:
    return SideProbeSpec(close=CLOSE, inducer="\\boxed{", answer_tokens=8, **kw)


def trial(text: str, probs=(0.99,), at: int = 10) -> Trial:
    return Trial(at, text, tuple(math.log(p) for p in probs), len(probs) + 1, 0)


def test_answer_is_read_inside_the_inducers_box():
    assert answer_of("\\boxed{", " 42 }") == "42"
    assert answer_of("**Final Answer**\n\\boxed{", "x = 3}\n") == "x = 3"
    assert answer_of("", "  17  ") == "17"  # no box: the text itself


def test_hedges_and_empty_answers_are_no_answer():
    assert answer_of("\\boxed{", " 4 } wait , check") is None
    assert answer_of("", "I am not sure") is None
    assert answer_of("\\boxed{", "}") is None
    assert answer_of("", "await 5") == "await 5"  # whole words only


@given(st.lists(st.floats(-20, 0), min_size=1, max_size=20))
def test_confidence_is_a_probability_and_min_below_mean(logprobs):
    low, mean = confidence_of(logprobs, "min"), confidence_of(logprobs, "mean")
    assert 0 <= low <= mean + 1e-12 <= 1 + 1e-12


def test_no_tokens_no_confidence():
    assert confidence_of([], "mean") == 0.0


@given(st.integers(1, 40), st.integers(0, 300))
def test_dynasor_tries_once_per_k_thinking_tokens(k, n):
    prober = SideProber(spec(every=k, agree=2))
    due = [prober.due([5], t, thinking=True) for t in range(1, n + 1)]
    assert sum(due) == n // k
    assert all(d == (t % k == 0) for t, d in zip(range(1, n + 1), due, strict=True))


def test_dynasor_catches_up_after_a_multi_token_step():
    prober = SideProber(spec(every=10, agree=2))
    assert prober.due([5, 5, 5], 12, thinking=True)  # crossed 10 inside one step
    assert not prober.due([5], 13, thinking=True)
    assert prober.due([5], 20, thinking=True)


def test_deer_tries_at_cues_inside_thinking_only():
    prober = SideProber(spec(cue_ids=frozenset({CUE}), threshold=0.9))
    assert not prober.due([5], 3, thinking=True)
    assert prober.due([5, CUE], 5, thinking=True)
    assert not prober.due([CUE], 6, thinking=False)


def test_no_trial_below_the_minimum_thinking():
    prober = SideProber(spec(every=8, cue_ids=frozenset({CUE}), threshold=0.9, min_thinking=20))
    assert not any(prober.due([CUE], t, thinking=True) for t in range(1, 20))
    assert prober.due([5], 20, thinking=True)  # the grid's missed points are due at once
    assert not prober.due([5], 21, thinking=True) and prober.due([5], 24, thinking=True)


def test_m_agreeing_answers_exit_under_dynasor():
    prober = SideProber(spec(every=8, agree=3))
    verdicts = [prober.judge(trial(t)) for t in (" 4 }", " 5 }", " 5 }", " 5 }")]
    assert [v.agreeing for v in verdicts] == [1, 1, 2, 3]
    assert [v.exit_by for v in verdicts] == [None, None, None, "dynasor"]
    assert verdicts[-1].answer == "5"


def test_a_hedge_breaks_the_run():
    prober = SideProber(spec(every=8, agree=2))
    verdicts = [prober.judge(trial(t)) for t in (" 5 }", " 5 } hmm", " 5 }", " 5 }")]
    assert [v.exit_by for v in verdicts] == [None, None, None, "dynasor"]
    assert verdicts[1].answer is None and verdicts[1].agreeing == 0


@given(st.lists(st.sampled_from([" 1 }", " 2 }", " wait }"]), max_size=30), st.integers(1, 5))
def test_dynasor_exits_exactly_when_the_last_m_answers_agree(texts, m):
    prober = SideProber(spec(every=4, agree=m))
    for i, text in enumerate(texts):
        verdict = prober.judge(trial(text))
        tail = [answer_of("\\boxed{", t) for t in texts[max(0, i - m + 1) : i + 1]]
        agree = len(tail) == m and tail[0] is not None and len(set(tail)) == 1
        assert (verdict.exit_by == "dynasor") == agree


def test_deer_exits_on_a_confident_answer():
    prober = SideProber(spec(cue_ids=frozenset({CUE}), threshold=0.9))
    assert prober.judge(trial(" 3 }", probs=(0.5, 0.99))).exit_by is None  # mean 0.745
    verdict = prober.judge(trial(" 3 }", probs=(0.95, 0.99)))
    assert verdict.exit_by == "deer" and verdict.confidence >= 0.9


def test_deer_on_the_minimum():
    prober = SideProber(spec(cue_ids=frozenset({CUE}), threshold=0.9, confidence="min"))
    assert prober.judge(trial(" 3 }", probs=(0.85, 0.99))).exit_by is None  # mean 0.92
    assert prober.judge(trial(" 3 }", probs=(0.91, 0.99))).exit_by == "deer"


def test_deer_never_exits_on_a_hedge():
    prober = SideProber(spec(cue_ids=frozenset({CUE}), threshold=0.1))
    assert prober.judge(trial(" 3 } but", probs=(0.99,))).exit_by is None
