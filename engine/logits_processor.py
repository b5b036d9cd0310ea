"""The adapters from thinkctl's controllers to vLLM's v1 logits-processor API.

This is the only module that implements `vllm.v1.sample.logits_processor.LogitsProcessor`.
Two processors, because vLLM asks each whether it can change the argmax, once for all
its requests:
- `ThinkctlLogitsProcessor` (not argmax-invariant: runs before temperature, also for
  greedy batches) hands vLLM's batch updates to a `BatchControl`
  (control/batch.py: every row's control stack, stepped with batched
  operations) and steps it inside `apply()` (where output ids are final; with async
  scheduling `update_state` may still see a placeholder), with the captured hidden
  states for LYNX's probe; the control events of the step go to the HTTP side.
- `ThinkctlTopHProcessor` (argmax-invariant: runs after temperature, skipped for greedy
  batches) truncates rows with top-H in the phases the request asked for.

These run on vLLM's V1 model runner, which thinkctl pins by default for every engine it
starts (engine/runner.py), on CPU and GPU alike; the Model Runner V2 adapter around the
same `BatchControl` is engine/logits_processor_v2.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from thinkctl.control.batch import BatchControl
from thinkctl.control.phase import Delimiters, PhaseTracker, initial_phase
from thinkctl.control.spec import ID_KEY, SPEC_KEY, ControlSpec, TopHSpec
from thinkctl.control.top_h import apply_top_h
from thinkctl.engine import probe_runtime
from thinkctl.engine.trace_channel import EventSender
from thinkctl.probes import capture


def _first_tp_rank() -> bool:
    from vllm.distributed.parallel_state import (
        get_tensor_model_parallel_rank,
        model_parallel_is_initialized,
    )

    return not model_parallel_is_initialized() or get_tensor_model_parallel_rank() == 0


def spec_of(params: SamplingParams) -> ControlSpec | None:
    raw = (params.extra_args or {}).get(SPEC_KEY)
    return None if raw is None else ControlSpec.model_validate(raw)


class ThinkctlLogitsProcessor(LogitsProcessor):
    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        # Runs in the frontend; pydantic's ValidationError is a ValueError, so vLLM
        # turns a bad spec into a 400 instead of failing in the worker.
        spec_of(sampling_params)

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        # Every tensor-parallel rank runs this processor on the same logits and takes the
        # same decisions; only the first reports them, so each event counts once.
        self._sender = EventSender.from_env() if _first_tp_rank() else None
        self.batch = BatchControl(probe_runtime.from_env(), probe_runtime.length_from_env())

    def is_argmax_invariant(self) -> bool:
        # Forcing and banning change which token wins, so this must also run for
        # greedy batches and before temperature.
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if not batch_update:
            return
        # vLLM's order (process_dict_updates): added rows, then removed, then moved.
        for index, params, prompt_ids, output_ids in batch_update.added:
            rid = str((params.extra_args or {}).get(ID_KEY, ""))
            self.batch.add(index, spec_of(params), prompt_ids, output_ids, rid)
        for index in batch_update.removed:
            self.batch.remove(index)
        for a, b, direction in batch_update.moved:
            self.batch.move(a, b, direction == MoveDirectionality.SWAP)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        cap = capture.current()
        report = self.batch.step(logits, cap.rows if cap is not None else None)
        if self._sender is not None:
            self._sender.send(report)
        return logits


@dataclass
class _TopHRow:
    spec: TopHSpec
    tracker: PhaseTracker
    output_ids: list[int]


class ThinkctlTopHProcessor(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self._rows: dict[int, _TopHRow] = {}

    def is_argmax_invariant(self) -> bool:
        # Truncation keeps the most likely token, so greedy decoding is unaffected.
        return True

    @staticmethod
    def _new_row(
        params: SamplingParams, prompt_ids: list[int] | None, output_ids: list[int]
    ) -> _TopHRow | None:
        spec = spec_of(params)
        if spec is None or spec.top_h is None:
            return None
        delims = Delimiters(*spec.think)
        tracker = PhaseTracker(delims, initial_phase(prompt_ids or (), delims))
        return _TopHRow(spec.top_h, tracker, output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self._rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        rows, alphas = [], []
        for index, row in self._rows.items():
            out = row.output_ids
            if len(out) > row.tracker.consumed:
                row.tracker.feed_all(out[row.tracker.consumed :])
            if row.spec.applies(row.tracker.phase):
                rows.append(index)
                alphas.append(row.spec.alpha)
        if rows:
            index = torch.tensor(rows, device=logits.device)
            alpha = torch.tensor(alphas, device=logits.device)
            logits[index] = apply_top_h(logits[index], alpha)
        return logits
