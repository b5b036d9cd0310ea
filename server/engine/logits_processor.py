"""The adapter from thinkctl's controllers to vLLM's v1 logits-processor API.

This is the only module that implements `vllm.v1.sample.logits_processor.LogitsProcessor`.
It holds one `ControlStack` per batch row, advances it inside `apply()` (where output
ids are final; with async scheduling `update_state` may still see a placeholder) and
writes the stack's action into that row's logits.

thinkctl pins `VLLM_USE_V2_MODEL_RUNNER=0` for every engine it starts, so this v1 API is
the one used on CPU and GPU alike; a model-runner-v2 adapter would be a sibling file
around the same `ControlStack`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from server.controllers.spec import ID_KEY, SPEC_KEY, ControlSpec
from server.controllers.stack import ControlStack, apply_action
from server.engine.trace_channel import EventSender

# Stacks of requests that left the batch, kept so that a preempted request resumes a
# forced sequence where it was instead of starting over. Bounded: finished requests
# leave the batch the same way and are never re-added.
_PARKED_MAX = 1024


@dataclass
class _Row:
    request_id: str
    stack: ControlStack
    output_ids: list[int]  # live reference to the request's running output
    sent: int = 0  # events already sent


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
        self._rows: dict[int, _Row] = {}
        self._parked: OrderedDict[str, _Row] = OrderedDict()
        self._sender = EventSender.from_env()

    def is_argmax_invariant(self) -> bool:
        # Forcing and banning change which token wins, so this must also run for
        # greedy batches and before temperature.
        return False

    def _new_row(
        self, params: SamplingParams, prompt_ids: list[int] | None, output_ids: list[int]
    ) -> _Row | None:
        spec = spec_of(params)
        if spec is None:
            return None
        request_id = str(params.extra_args.get(ID_KEY, ""))
        parked = self._parked.pop(request_id, None) if request_id else None
        if parked is not None:
            parked.output_ids = output_ids
            return parked
        return _Row(request_id, spec.build(prompt_ids or ()), output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update:
            for index in batch_update.removed:
                row = self._rows.get(index)
                if row is not None and row.request_id:
                    self._parked[row.request_id] = row
                    while len(self._parked) > _PARKED_MAX:
                        self._parked.popitem(last=False)
        process_dict_updates(self._rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for index, row in self._rows.items():
            action = row.stack.step(row.output_ids, logits[index])
            if not action.is_empty:
                apply_action(action, logits[index])
            events = row.stack.events
            if self._sender is not None and row.sent < len(events):
                for event in events[row.sent :]:
                    self._sender.send(row.request_id, event)
                row.sent = len(events)
        return logits
