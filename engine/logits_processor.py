"""The adapters from thinkctl's controllers to vLLM's v1 logits-processor API.

This is the only module that implements `vllm.v1.sample.logits_processor.LogitsProcessor`.
Two processors, because vLLM asks each whether it can change the argmax, once for all
its requests:
- `ThinkctlLogitsProcessor` (not argmax-invariant: runs before temperature, also for
  greedy batches) holds one `ControlStack` per batch row, advances it inside `apply()`
  (where output ids are final; with async scheduling `update_state` may still see a
  placeholder) and writes the stack's action (force, ban, shift) into that row. For a
  LYNX request it also assembles the probe's features at each cue: the captured hidden
  state, plus the sampled-token confidence (probes/confidence.py, fed every step with
  the batch's logits as they arrive, before any action) when the probe reads it.
- `ThinkctlTopHProcessor` (argmax-invariant: runs after temperature, skipped for greedy
  batches) truncates rows with top-H in the phases the request asked for.

thinkctl pins `VLLM_USE_V2_MODEL_RUNNER=0` for every engine it starts, so this v1 API is
the one used on CPU and GPU alike; a model-runner-v2 adapter would be a sibling file
around the same `ControlStack`.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import torch
from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from engine import probe_runtime
from engine.trace_channel import EventSender
from probes import capture
from probes.confidence import ConfidenceFeed, SampledConfidence, probe_input
from server.controllers.phase import Delimiters, Phase, PhaseTracker, initial_phase
from server.controllers.spec import ID_KEY, SPEC_KEY, ControlSpec, TopHSpec
from server.controllers.stack import ControlStack, apply_actions
from server.controllers.top_h import apply_top_h

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
    # Output length at the previous step: a step that adds exactly one token is the
    # decode step processing that token, the only one whose captured features are its.
    seen: int = -1
    confidence: SampledConfidence | None = None  # only for a LYNX probe that reads it


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
        self._rows: dict[int, _Row] = {}
        self._parked: OrderedDict[str, _Row] = OrderedDict()
        # Every tensor-parallel rank runs this processor on the same logits and takes the
        # same decisions; only the first reports them, so each event counts once.
        self._sender = EventSender.from_env() if _first_tp_rank() else None
        self._probe = probe_runtime.from_env()
        self._confidence = ConfidenceFeed()

    def is_argmax_invariant(self) -> bool:
        # Forcing and banning change which token wins, so this must also run for
        # greedy batches and before temperature.
        return False

    def _new_row(
        self, params: SamplingParams, prompt_ids: list[int] | None, output_ids: list[int]
    ) -> _Row | None:
        spec = spec_of(params)
        if spec is None or not spec.has_step_controllers:
            return None
        request_id = str(params.extra_args.get(ID_KEY, ""))
        parked = self._parked.pop(request_id, None) if request_id else None
        if parked is not None:
            parked.output_ids = output_ids
            return parked
        probe = self._probe
        conf = None
        if spec.lynx is not None and probe is not None and probe.confidence:
            conf = SampledConfidence(probe.cue_ids)
        return _Row(request_id, spec.build(prompt_ids or (), probe), output_ids, confidence=conf)

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
        cap = capture.current()
        # Before any action changes the logits: the confidence input reads them as they came.
        self._confidence.step(
            (
                (i, r.output_ids, r.confidence)
                for i, r in self._rows.items()
                if r.confidence is not None
            ),
            logits,
        )
        actions = []
        views = logits.unbind(0) if self._rows else ()  # one call, not one index per row
        for index, row in self._rows.items():
            n = len(row.output_ids)
            hidden = None
            if cap is not None and capture.is_fresh_step(n, row.seen):
                hidden = functools.partial(_features, cap, index, row.confidence)
            row.seen = n
            # Each row decides on its own logits as they came; all act together below.
            action = row.stack.step(row.output_ids, views[index], hidden)
            if not action.is_empty:
                actions.append((index, action))
            if row.confidence is not None and row.stack.tracker.phase is Phase.ANSWER:
                row.confidence = None  # LYNX scores only while thinking; the recorder stops too
            events = row.stack.events
            if self._sender is not None and row.sent < len(events):
                for event in events[row.sent :]:
                    self._sender.send(row.request_id, event)
                row.sent = len(events)
        if actions:
            apply_actions(actions, logits)
        return logits


def _features(
    cap: capture.StepCapture, index: int, confidence: SampledConfidence | None
) -> torch.Tensor:
    """The probe's input for batch row `index` at this step."""
    return probe_input(cap.row(index), confidence)


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
