"""Record residual-stream features at cue tokens while vLLM generates calibration traces.

The same capture (probes/capture.py) and the same step alignment as the server's LYNX
controller: a cue's features are read at the decode step that processes the cue token,
the first step at which the request holds one more output token than before. Re-prefill
after preemption never records (its logits rows are other tokens). With `"confidence"`
in the record spec, each record ends with the sampled-token confidence since the
previous cue (probes/confidence.py), computed by the same code the server runs. The
prompt's own features (its last token's, read at the prefill step that computes its first
logits, as the server's length predictor reads them) are recorded at position -1.

Runs inside vLLM's worker: `CueRecorder` is a logits processor that never changes the
logits; `thinkctl_take_records` of thinkctl's worker extension hands the records back over
`collective_rpc`; the worker extension installs the hooks once the model has loaded, as
for the server's engine (engine/worker.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from thinkctl.probes import capture
from thinkctl.probes.confidence import ConfidenceFeed, probe_input

# extra_args: {"key": str, "cues": [ids], "end": id, "confidence": bool}
RECORD_KEY = "thinkctl_record"
PROCESSOR = "thinkctl.engine.recorder:CueRecorder"


def record_args(key: str, cues: Iterable[int], end: int, confidence: bool) -> dict:
    """The `extra_args` that make the recorder record a request's cues under `key`."""
    return {RECORD_KEY: {"key": key, "cues": list(cues), "end": end, "confidence": confidence}}


# key -> [(output position of the cue, float32 feature bytes)]
_RECORDS: dict[str, list[tuple[int, bytes]]] = {}
# key -> the prompt's last-token features; a chunked prefill rewrites it until its last chunk
_PROMPTS: dict[str, bytes] = {}
PROMPT_POSITION = -1


@dataclass
class _Row:
    key: str
    cues: frozenset[int]
    end: int
    output_ids: list[int]
    seen: int = -1  # output length at the previous step; -1 before the first
    closed: bool = False
    positions: set[int] = field(default_factory=set)
    confidence: bool = False  # its features end with probes/confidence.py's value


class CueRecorder(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self._rows: dict[int, _Row] = {}
        self._confidence = ConfidenceFeed()

    def is_argmax_invariant(self) -> bool:
        return False  # must run for greedy batches too; it never changes the logits

    @staticmethod
    def _new_row(params: SamplingParams, prompt_ids, output_ids: list[int]) -> _Row | None:
        spec = (params.extra_args or {}).get(RECORD_KEY)
        if spec is None:
            return None
        cues = frozenset(spec["cues"])
        conf = bool(spec.get("confidence"))
        return _Row(spec["key"], cues, int(spec["end"]), output_ids, confidence=conf)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update:  # the feed's rows follow the requests, as the dict's do below
            for index, *_ in batch_update.added:
                self._confidence.reset(index)
            for a, b, direction in batch_update.moved:
                self._confidence.move(a, b, direction == MoveDirectionality.SWAP)
        process_dict_updates(self._rows, batch_update, self._new_row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        cap = capture.current()
        tracked = [(i, r) for i, r in self._rows.items() if r.confidence and not r.closed]
        outs = [r.output_ids for _, r in tracked]
        last = [out[-1] if out else -1 for out in outs]
        self._confidence.step(
            np.array([i for i, _ in tracked], np.int64),
            np.array([len(out) for out in outs], np.int64),
            np.array(last, np.int64),
            np.array([tok in r.cues for tok, (_, r) in zip(last, tracked, strict=True)], bool),
            logits,
        )
        for index, row in self._rows.items():
            n = len(row.output_ids)
            fresh = capture.is_fresh_step(n, row.seen)
            row.seen = n
            if n == 0 and cap is not None:  # a prefill step: its logits row ends the chunk
                _PROMPTS[row.key] = cap.row(index).cpu().numpy().astype(np.float32).tobytes()
            if row.closed or not fresh:
                continue
            last = row.output_ids[n - 1]
            if last == row.end:
                row.closed = True
            elif last in row.cues and cap is not None and n - 1 not in row.positions:
                row.positions.add(n - 1)
                conf = self._confidence.value(index) if row.confidence else None
                feats = probe_input(cap.row(index), conf)
                feats = feats.cpu().numpy().astype(np.float32)
                _RECORDS.setdefault(row.key, []).append((n - 1, feats.tobytes()))
        return logits


def take_records() -> dict[str, list[tuple[int, bytes]]]:
    """The records since the last call (the prompt's at PROMPT_POSITION), forgotten here."""
    out = dict(_RECORDS)
    for key, raw in _PROMPTS.items():
        out[key] = [(PROMPT_POSITION, raw), *out.get(key, [])]
    _RECORDS.clear()
    _PROMPTS.clear()
    return out
