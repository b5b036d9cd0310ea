"""thinkctl's controllers on vLLM's Model Runner V2 logits-processor interface
(`vllm/v1/worker/gpu/sample/logits_processor/interface.py`), around the same batched
control core as the V1 adapter (engine/logits_processor.py).

What V2 gives differs from V1, and how this adapter meets each difference:
- **Rows are reordered every step** and state is keyed by persistent request slots.
  `BatchControl` keys its state by logits row, as V1's persistent batch does; each step
  the slots' rows are matched to this step's layout (`ctx.idx_mapping_np`, on the host):
  a request whose row changes is parked by request id and re-added at its new row, which
  restores its state exactly (the same path as V1's preemption).
- **No removal hook.** A slot is handed to a new request through `add_request`; the old
  occupant (finished, or preempted and re-added elsewhere) is parked by id then, and
  events went out step by step, so nothing is lost. Parking is bounded (PARKED_MAX).
- **No output token lists.** Each slot's output is kept here: at each step the token fed
  at its row (`ctx.input_ids`) is its newest output once the sequence has grown past the
  prompt (`seq_lens_upper_bound_np`, exact without speculative decoding). Reading it is
  one host copy of the controlled rows' tokens per step, which syncs with the device:
  the control decisions are host logic. Batches without controlled rows skip it.
  The prompt (and, after preemption, the output so far) is read once per request from
  the runner's token buffer.
- **No hook after temperature**, where V1 runs top-H: here top-H runs in the same
  `apply()`, choosing what to keep on the logits divided by the request's temperature
  and masking the rest to -inf before vLLM applies temperature, which leaves the same
  distribution. Greedy rows are skipped (top-H keeps the argmax).
- vLLM's own thinking-budget forcing runs after `apply()`; thinkctl never sets
  `thinking_token_budget` on the engine's parameters, so nothing is forced twice.
- **Speculative decoding** gives a request several rows (one per draft token), which the
  control core has no state for: refused at start-up (engine/runner.py).
- **Hidden-state capture** (LYNX, per-query length) reads V1's runner state: refused
  under V2 at start-up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from vllm import SamplingParams
from vllm.v1.worker.gpu.sample.logits_processor.interface import (
    LogitsContext,
    LogitsProcessor,
    LogitsProcRequestState,
)

from thinkctl.control.batch import BatchControl
from thinkctl.control.phase import Delimiters, PhaseTracker, initial_phase
from thinkctl.control.spec import ID_KEY, ControlSpec
from thinkctl.control.top_h import top_h_keep
from thinkctl.engine.logits_processor import _first_tp_rank, spec_of
from thinkctl.engine.trace_channel import EventSender

if TYPE_CHECKING:
    from vllm.config import VllmConfig

SAMPLING_EPS = 1e-5  # vLLM's: below this temperature a request is greedy
_anonymous = itertools.count()


@dataclass
class _Slot:
    request_id: str
    spec: ControlSpec
    temperature: float
    outs: list[int] = field(default_factory=list)
    prompt: list[int] | None = None  # read from the runner's buffer at its first step
    row: int | None = None  # the BatchControl row it holds, if any
    tracker: PhaseTracker | None = None  # top-H's phase, when the request asked for it


class ThinkctlV2LogitsProcessor(LogitsProcessor):
    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        spec_of(sampling_params)  # a bad spec is a ValueError: a 400 at admission

    def __init__(self, vllm_config: VllmConfig, req_states: LogitsProcRequestState) -> None:
        self._states = req_states
        self._sender = EventSender.from_env() if _first_tp_rank() else None
        self.batch = BatchControl()  # no probe, no length predictor: V1's capture only
        self._slots: dict[int, _Slot] = {}
        self._row_slot: dict[int, int] = {}  # BatchControl row -> slot

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        self._release(req_idx)  # the slot's previous occupant, if any
        spec = spec_of(sampling_params)
        if spec is None or not (spec.has_step_controllers or spec.top_h is not None):
            return False
        rid = str((sampling_params.extra_args or {}).get(ID_KEY) or f"v2-{next(_anonymous)}")
        slot = _Slot(rid, spec, sampling_params.temperature)
        if spec.top_h is not None:
            slot.tracker = PhaseTracker(Delimiters(*spec.think))  # phase set with the prompt
        self._slots[req_idx] = slot
        return True

    def _release(self, req_idx: int) -> None:
        slot = self._slots.pop(req_idx, None)
        if slot is not None and slot.row is not None:
            self.batch.remove(slot.row)  # parked by its id: a preempted request comes back
            self._row_slot.pop(slot.row, None)

    def apply(self, logits: torch.Tensor, ctx: LogitsContext) -> torch.Tensor:
        if logits.shape[0] != len(ctx.idx_mapping_np):
            raise RuntimeError("thinkctl's V2 adapter controls one row per request "
                               "(no speculative decoding)")  # fmt: skip
        batch = [(i, s) for i, s in enumerate(ctx.idx_mapping_np.tolist()) if s in self._slots]
        wanted = dict(batch)
        for row, s in list(self._row_slot.items()):  # rows that now hold another request
            if wanted.get(row) != s:
                self.batch.remove(row)
                del self._row_slot[row]
                self._slots[s].row = None
        if not batch:
            return logits
        rows = torch.tensor([i for i, _ in batch], device=ctx.input_ids.device)
        fed = ctx.input_ids[rows].tolist()  # the step's one host sync (module docstring)
        for (i, s), token in zip(batch, fed, strict=True):
            slot = self._slots[s]
            if slot.prompt is None:
                self._read_prompt(s, slot)
            grown = int(ctx.seq_lens_upper_bound_np[i]) - len(slot.prompt or ())
            if grown > len(slot.outs):
                slot.outs.append(token)
            if slot.row != i and slot.spec.has_step_controllers:
                self.batch.add(i, slot.spec, slot.prompt, slot.outs, slot.request_id)
                slot.row, self._row_slot[i] = i, s
        report = self.batch.step(logits)
        if self._sender is not None:
            self._sender.send(report)
        self._top_h(logits, batch)
        return logits

    def _read_prompt(self, s: int, slot: _Slot) -> None:
        """The prompt, and the output before a preemption, from the runner's buffer."""
        states = self._states
        prompt_len, filled = int(states.prompt_len.np[s]), int(states.prefill_len.np[s])
        ids = states.all_token_ids.gpu[s, :filled].tolist()
        slot.prompt, slot.outs[:] = ids[:prompt_len], ids[prompt_len:]
        if slot.tracker is not None:
            delims = slot.tracker.delims
            slot.tracker = PhaseTracker(delims, initial_phase(slot.prompt, delims))

    def _top_h(self, logits: torch.Tensor, batch: list[tuple[int, int]]) -> None:
        rows, alphas, temps = [], [], []
        for i, s in batch:
            slot = self._slots[s]
            spec, tracker = slot.spec.top_h, slot.tracker
            if spec is None or tracker is None or slot.temperature < SAMPLING_EPS:
                continue
            if len(slot.outs) > tracker.consumed:
                tracker.feed_all(slot.outs[tracker.consumed :])
            if spec.applies(tracker.phase):
                rows.append(i)
                alphas.append(spec.alpha)
                temps.append(slot.temperature)
        if not rows:
            return
        index = torch.tensor(rows, device=logits.device)
        alpha = torch.tensor(alphas, device=logits.device)
        temp = torch.tensor(temps, device=logits.device, dtype=logits.dtype)[:, None]
        keep = top_h_keep(logits[index] / temp, alpha)
        logits[index] = logits[index].masked_fill(~keep, float("-inf"))
