"""The sampled-token confidence feature on hand-made logits rows."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.probes.confidence import FLOOR, ConfidenceFeed, probe_input

CUE, VOCAB = 3, 5


def row(p_token: dict[int, float]) -> torch.Tensor:
    """Logits whose softmax gives each listed token its probability (the rest share what
    is left)."""
    rest = (1 - sum(p_token.values())) / (VOCAB - len(p_token))
    probs = [p_token.get(t, rest) for t in range(VOCAB)]
    return torch.tensor([math.log(p) + 7.0 for p in probs])  # softmax ignores the shift


def feed_step(feed: ConfidenceFeed, rows: list[int], outs: list[list[int]], logits) -> None:
    """One step of `feed` over batch `rows`, whose requests have output `outs` so far."""
    last = [o[-1] if o else -1 for o in outs]
    feed.step(np.array(rows, np.int64), np.array([len(o) for o in outs], np.int64),
              np.array(last, np.int64), np.array([t == CUE for t in last]), logits)  # fmt: skip


class One:
    """A single request fed alone: each `observe` is one step of a batch of one row."""

    def __init__(self) -> None:
        self.feed = ConfidenceFeed()
        self.feed.reset(0)

    def observe(self, out: list[int], logits: torch.Tensor) -> None:
        feed_step(self.feed, [0], [out], logits.unsqueeze(0))

    def skip(self) -> None:
        """A step of the batch without this request."""
        feed_step(self.feed, [], [], torch.empty(0, VOCAB))

    def value(self) -> torch.Tensor:
        return self.feed.value(0)


def decode(tracker: One, steps, out: list[int] | None = None) -> list[int]:
    """Run decode steps: each step the tracker sees the output so far and that step's
    logits, then the listed token is appended; a last step processes the last token."""
    out = list(out or [])
    for token, logits in steps:
        tracker.observe(out, logits)
        out.append(token)
    tracker.observe(out, row({}))
    return out


def test_a_cue_reports_the_least_likely_token_since_the_previous_cue_without_itself():
    t = One()
    out = decode(t, [(0, row({0: 0.9})), (1, row({1: 0.2})), (2, row({2: 0.6})),
                     (CUE, row({CUE: 0.01}))])  # fmt: skip
    assert t.value().item() == pytest.approx(math.log(0.2), abs=1e-5)
    # the next segment starts afresh: only tokens after the cue count
    decode(t, [(0, row({0: 0.5})), (CUE, row({CUE: 0.3}))], out)
    assert t.value().item() == pytest.approx(math.log(0.5), abs=1e-5)


def test_before_any_cue_the_value_is_certain():
    t = One()
    decode(t, [(0, row({0: 0.1})), (1, row({1: 0.1}))])
    assert t.value().item() == 0.0


def test_a_repeated_call_for_the_same_step_counts_its_token_once_and_keeps_the_last_row():
    t = One()
    out: list[int] = []
    t.observe(out, row({0: 0.01}))  # a discarded chunked-prefill sample
    t.observe(out, row({0: 0.8}))  # the row the token was really drawn from
    out.append(0)
    t.observe(out, row({CUE: 0.5}))
    t.observe(out, row({CUE: 0.5}))  # same step again: token 0 is not counted twice
    out.append(CUE)
    t.observe(out, row({}))
    assert t.value().item() == pytest.approx(math.log(0.8), abs=1e-5)


def test_a_gap_in_the_steps_skips_the_tokens_it_cannot_score():
    t = One()
    t.observe([], row({0: 0.01}))
    t.observe([0, 1], row({CUE: 0.9}))  # preempted: two tokens appeared, none is scored
    t.observe([0, 1, CUE], row({}))
    assert t.value().item() == 0.0


def test_forced_tokens_are_floored():
    t = One()
    logits = torch.zeros(VOCAB)
    logits[1] = float("-inf")
    decode(t, [(1, logits), (CUE, row({}))])
    assert t.value().item() == FLOOR


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, VOCAB - 1), st.integers(0, 10**6)), min_size=1,
                max_size=30))  # fmt: skip
def test_the_value_is_the_minimum_log_probability_of_the_last_segment(draws):
    t = One()
    out: list[int] = []
    want, segment = 0.0, []
    for token, seed in draws:
        logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed))
        t.observe(out, logits)
        if token == CUE:
            want, segment = (min(segment) if segment else 0.0), []
        else:
            segment.append(max(float(torch.log_softmax(logits, -1)[token]), FLOOR))
        out.append(token)
    t.observe(out, torch.zeros(VOCAB))
    assert abs(t.value().item() - want) < 1e-5


def test_the_probe_input_appends_the_value_only_for_a_probe_that_reads_it():
    hidden = torch.arange(4.0)
    assert torch.equal(probe_input(hidden, None), hidden)
    t = One()
    decode(t, [(0, row({0: 0.5})), (CUE, row({}))])
    got = probe_input(hidden, t.value())
    assert got.shape == (5,) and torch.equal(got[:4], hidden)
    assert got[4].item() == pytest.approx(math.log(0.5), abs=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.randoms(use_true_random=False))
def test_a_batch_feeds_each_request_as_if_it_were_alone(n_requests, rnd):
    """Requests in one batch, moving between rows (vLLM's swaps) and sometimes left out
    of a step, get the values each would get fed alone through the same steps."""
    batch, alone = ConfidenceFeed(), [One() for _ in range(n_requests)]
    where = list(range(n_requests))  # request -> its batch row
    for r in where:
        batch.reset(r)
    outs: list[list[int]] = [[] for _ in range(n_requests)]
    for _ in range(25):
        a, b = rnd.randrange(n_requests), rnd.randrange(n_requests)
        if a != b:  # the requests in rows a and b swap rows
            batch.move(a, b, swap=True)
            ra, rb = where.index(a), where.index(b)
            where[ra], where[rb] = b, a
        present = [r for r in range(n_requests) if rnd.random() < 0.8]
        logits = torch.randn(n_requests, VOCAB, generator=torch.Generator().manual_seed(
            rnd.randrange(10**6)))  # fmt: skip
        feed_step(batch, [where[r] for r in present], [outs[r] for r in present], logits)
        for r in range(n_requests):  # the same step, one request at a time
            if r in present:
                alone[r].observe(outs[r], logits[where[r]])
            else:
                alone[r].skip()
        for r in present:
            outs[r].append(rnd.choice([0, 1, 2, CUE]))
    for r in range(n_requests):
        assert torch.allclose(batch.value(where[r]), alone[r].value())


def test_a_request_that_missed_a_step_skips_the_token_drawn_before_it():
    t = One()
    t.observe([], row({0: 0.01}))
    t.skip()  # preempted for a step: not in the batch
    t.observe([0], row({1: 0.5}))  # token 0 came from a row the feed no longer holds
    t.observe([0, 1], row({}))
    t.observe([0, 1, CUE], row({}))
    assert t.value().item() == pytest.approx(math.log(0.5), abs=1e-5)
