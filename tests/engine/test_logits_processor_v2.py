"""The Model Runner V2 adapter against the V1 one: the same decode, replayed through both
(vLLM's own V2 interface classes and buffers, on CPU tensors), gives the same logits
edits, sampled tokens and control events, while V2 reorders its rows, reuses slots and
preempts a request."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate
from vllm.v1.worker.gpu.buffer_utils import StagedWriteTensor, UvaBackedTensor
from vllm.v1.worker.gpu.sample.logits_processor.interface import (
    LogitsContext,
    LogitsProcRequestState,
)

from tests.control.helpers import END, EOS, INDUCE, START, WAIT
from thinkctl.control.spec import ID_KEY, SPEC_KEY, ControlSpec
from thinkctl.engine.logits_processor import ThinkctlLogitsProcessor, ThinkctlTopHProcessor
from thinkctl.engine.logits_processor_v2 import ThinkctlV2LogitsProcessor

V, SLOTS, MAX_LEN = 12, 8, 64
CLOSE = [END, INDUCE]
THINK = (START, END)
SPECS = {  # every per-step control the core has, one request each
    "budget": {"budget": {"max": 4, "close": CLOSE}},
    "min_wait": {"budget": {"min": 6, "wait": [WAIT], "stop": [END, EOS]}},
    "ts": {"ts": {"strength": 4.0}},
    "mode": {"mode": [END, INDUCE, 7]},
    "top_h": {"top_h": {"alpha": 0.5, "phase": "both"}},
    "budget_top_h": {"budget": {"max": 2, "close": CLOSE}, "top_h": {"alpha": 0.3}},
    "plain": None,
}


@pytest.fixture(autouse=True)
def _host_buffers(monkeypatch):
    """vLLM's buffers as on a machine without pinned memory (this CPU), and no channel."""
    from vllm.v1.worker.gpu import buffer_utils

    monkeypatch.setattr(buffer_utils, "is_uva_available", lambda: False)
    monkeypatch.delenv("THINKCTL_TRACE_ADDR", raising=False)


def _params(name: str, temperature: float) -> SamplingParams:
    raw = SPECS[name]
    extra = (
        None
        if raw is None
        else {SPEC_KEY: ControlSpec(think=THINK, **raw).model_dump(mode="json"), ID_KEY: name}
    )
    return SamplingParams(temperature=temperature, extra_args=extra)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []

    def send(self, report) -> None:
        self.events += [(rid, tuple(e)) for rid, e in report.events]


class V2Runner:
    """What Model Runner V2 keeps and passes: slots, the token buffer, the step's layout."""

    def __init__(self) -> None:
        dev = torch.device("cpu")
        self.state = LogitsProcRequestState(
            device=dev, max_num_reqs=SLOTS, vocab_size=V,
            all_token_ids=StagedWriteTensor((SLOTS, MAX_LEN), torch.int32, dev),
            prompt_len=UvaBackedTensor(SLOTS, torch.int32),
            prefill_len=UvaBackedTensor(SLOTS, torch.int32),
            total_len=StagedWriteTensor(SLOTS, torch.int32, dev),
        )  # fmt: skip
        self.lp = ThinkctlV2LogitsProcessor(None, self.state)
        self.lp._sender = self.sent = Recorder()

    def admit(self, slot: int, params: SamplingParams, prompt: list[int], outs: list[int]):
        ids = [*prompt, *outs]
        self.state.all_token_ids.gpu[slot, : len(ids)] = torch.tensor(ids)
        self.state.prompt_len.np[slot], self.state.prefill_len.np[slot] = len(prompt), len(ids)
        return self.lp.add_request(slot, params)

    def apply(self, logits: torch.Tensor, slots: list[int], seqs: list[list[int]]) -> None:
        fed = torch.tensor([s[-1] for s in seqs])
        ctx = LogitsContext(
            expanded_idx_mapping=torch.tensor(slots), idx_mapping=torch.tensor(slots),
            idx_mapping_np=np.array(slots), expanded_local_pos=torch.zeros(len(slots)),
            input_ids=fed, pos=torch.tensor([len(s) - 1 for s in seqs]),
            seq_lens_upper_bound_np=np.array([len(s) for s in seqs]),
        )  # fmt: skip
        self.lp.apply(logits, ctx)


class V1Runner:
    def __init__(self) -> None:
        self.lp = ThinkctlLogitsProcessor(None, torch.device("cpu"), False)
        self.top_h = ThinkctlTopHProcessor(None, torch.device("cpu"), False)
        self.lp._sender = self.sent = Recorder()

    def update(self, size: int, added=(), removed=()) -> None:
        for p in (self.lp, self.top_h):
            p.update_state(BatchUpdate(batch_size=size, removed=list(removed),
                                       added=list(added), moved=[]))  # fmt: skip

    def apply(self, logits: torch.Tensor, temperatures: torch.Tensor) -> None:
        self.lp.apply(logits)
        tempered = logits / temperatures[:, None]  # vLLM's sampler, then top-H after it
        kept = self.top_h.apply(tempered.clone())
        logits.masked_fill_(torch.isinf(kept) & ~torch.isinf(tempered), float("-inf"))


@pytest.mark.parametrize("seed", range(6))
def test_both_adapters_edit_sample_and_report_alike(seed):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    names = list(SPECS)
    rng.shuffle(names)
    temps = {n: rng.choice([0.0, 0.7, 1.3]) for n in names}
    prompts = {n: [9, START] if rng.random() < 0.7 else [9] for n in names}
    outs: dict[str, list[int]] = {n: [] for n in names}
    v1, v2 = V1Runner(), V2Runner()
    running = names[:5]  # V1 rows in this order; V2 slots below, in their own order
    waiting = names[5:]
    slot_of = {n: i for i, n in enumerate(running)}
    v1.update(len(running), added=[(i, _params(n, temps[n]), prompts[n], outs[n])
                                   for i, n in enumerate(running)])  # fmt: skip
    for n in running:
        v2.admit(slot_of[n], _params(n, temps[n]), prompts[n], outs[n])
    for step in range(14):
        if step == 6 and waiting:  # one finishes, one new request takes its V2 slot
            gone, new = running.pop(0), waiting.pop(0)
            free = slot_of.pop(gone)
            v1.update(len(running), removed=[0])
            # V1 compacts: rebuild its rows from scratch in the new order (park/unpark)
            v1.update(len(running), removed=list(range(1, len(running) + 1)))
            running.append(new)
            v1.update(len(running), added=[(i, _params(n, temps[n]), prompts[n], outs[n])
                                           for i, n in enumerate(running)])  # fmt: skip
            slot_of[new] = free
            v2.admit(free, _params(new, temps[new]), prompts[new], outs[new])
        logits = torch.randn(len(running), V, generator=gen) * 3
        l1 = logits.clone()
        v1.apply(l1, torch.tensor([max(temps[n], 1e-5) for n in running]))
        order = list(range(len(running)))
        rng.shuffle(order)  # V2 lays the batch out in its own order each step
        l2 = logits[order].clone()
        v2.apply(l2, [slot_of[running[i]] for i in order],
                 [[*prompts[running[i]], *outs[running[i]]] or [0] for i in order])  # fmt: skip
        back = torch.empty_like(l2)
        back[order] = l2
        assert torch.equal(torch.isinf(l1), torch.isinf(back)), step
        finite = ~torch.isinf(l1)
        assert torch.allclose(l1[finite], back[finite]), step
        for i, n in enumerate(running):  # the same token from both: greedy on the edits
            outs[n].append(int(l1[i].argmax()))
    assert sorted(v1.sent.events) == sorted(v2.sent.events)
    assert v1.sent.events, "the premise: the controls acted"
    acted = {rid for rid, _ in v1.sent.events}
    assert acted & {"budget", "budget_top_h", "min_wait", "mode"}, acted


def test_a_preempted_request_resumes_in_another_slot():
    v2 = V2Runner()
    out: list[int] = []
    p = _params("budget", 0.0)
    v2.admit(0, p, [START], out)
    for _ in range(6):
        logits = torch.zeros(1, V)
        logits[0, 7] = 1.0
        v2.apply(logits, [0], [[START, *out]])
        out.append(int(logits[0].argmax()))
        if len(out) == 5:  # preempted after the forced END: resumes in slot 3
            v2.admit(3, p, [START], list(out))
            v2.lp.add_request(0, SamplingParams())  # slot 0 goes to another request
            slot = 3
            break
    for _ in range(2):
        logits = torch.zeros(1, V)
        logits[0, 7] = 1.0
        v2.apply(logits, [slot], [[START, *out]])
        out.append(int(logits[0].argmax()))
    assert out == [7, 7, 7, 7, *CLOSE, 7]
