"""The vLLM adapter, driven with hand-built BatchUpdates as vLLM's model runner would."""

import pytest
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from tests.control.helpers import END, INDUCE, START, V
from thinkctl.control.batch import BatchControl
from thinkctl.control.spec import ID_KEY, SPEC_KEY, ControlSpec
from thinkctl.engine.logits_processor import ThinkctlLogitsProcessor

CLOSE = [END, INDUCE]


def params(max_thinking: int, rid: str) -> SamplingParams:
    spec = ControlSpec(think=(START, END), budget={"max": max_thinking, "close": CLOSE})
    return SamplingParams(extra_args={SPEC_KEY: spec.model_dump(mode="json"), ID_KEY: rid})


def update(added=(), removed=(), moved=(), size=2) -> BatchUpdate:
    return BatchUpdate(batch_size=size, removed=list(removed), added=list(added), moved=list(moved))


@pytest.fixture
def lp(monkeypatch):
    monkeypatch.delenv("THINKCTL_TRACE_ADDR", raising=False)
    return ThinkctlLogitsProcessor(None, torch.device("cpu"), False)


def step(lp, outputs: list[list[int]]) -> list[int]:
    logits = torch.zeros(len(outputs), V)
    logits[:, 7] = 1.0  # the "model" prefers token 7
    lp.update_state(None)
    chosen = lp.apply(logits).argmax(dim=1).tolist()
    for out, tok in zip(outputs, chosen, strict=True):
        out.append(tok)
    return chosen


def test_rows_follow_their_requests_through_moves(lp):
    a, b = [], []
    lp.update_state(
        update(added=[(0, params(1, "a"), [START], a), (1, params(3, "b"), [START], b)])
    )
    assert lp.is_argmax_invariant() is False
    step(lp, [a, b])
    lp.update_state(update(moved=[(0, 1, MoveDirectionality.SWAP)]))
    for _ in range(4):
        step(lp, [b, a])  # rows are now swapped
    assert a == [7, *CLOSE, 7, 7]
    assert b == [7, 7, 7, *CLOSE]


def test_requests_without_a_spec_are_left_alone(lp):
    out: list[int] = []
    lp.update_state(update(added=[(0, SamplingParams(), [START], out)], size=1))
    logits = torch.randn(1, V)
    assert torch.equal(lp.apply(logits.clone()), logits)


def test_a_preempted_request_resumes_its_forced_sequence(lp):
    out: list[int] = []
    p = params(0, "r")
    lp.update_state(update(added=[(0, p, [START], out)], size=1))
    step(lp, [out])  # forces END
    lp.update_state(update(removed=[0], size=0))  # preempted
    lp.update_state(update(added=[(0, p, [START], out)], size=1))  # re-added with its output
    step(lp, [out])
    assert out == CLOSE


def test_validate_params_turns_a_bad_spec_into_a_value_error():
    bad = SamplingParams(extra_args={SPEC_KEY: {"think": [1, 2], "budget": {"max": -5}}})
    with pytest.raises(ValueError):
        ThinkctlLogitsProcessor.validate_params(bad)


class ProbeStub:
    """The worker's loaded probe as the processor sees it: cue ids, the confidence input,
    thresholds that never exit."""

    cue_ids = frozenset({6})
    confidence = True

    def thresholds(self, delta: float) -> tuple[float, float]:
        return 1.0, 1.0

    def scorer(self):
        return lambda features: 0.5

    def scores(self, features):
        return [0.5] * len(features)


def test_the_confidence_input_stops_being_fed_once_thinking_closes(lp):
    lp.batch = BatchControl(ProbeStub())
    spec = ControlSpec(think=(START, END), lynx={"delta": 0.05, "close": CLOSE})
    out: list[int] = []
    p = SamplingParams(extra_args={SPEC_KEY: spec.model_dump(mode="json"), ID_KEY: "r"})
    lp.update_state(update(added=[(0, p, [START], out)], size=1))
    for token in (7, 7, END, 7):
        lp.update_state(None)
        lp.apply(torch.zeros(1, V))
        fed = lp.batch._feed._seen_n[0] == len(out)
        assert fed == (END not in out)  # fed while thinking, not after
        out.append(token)
