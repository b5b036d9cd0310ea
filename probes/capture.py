"""Residual-stream features captured inside vLLM's worker, the same way for calibration
and serving (so a probe sees at serving time exactly what it was trained on).

Definition: the feature of block k (1-based, k = 1..L) at a position is the residual
stream after decoder block k, i.e. vLLM's layer output `hidden + residual` (vLLM fuses
the residual add into the next norm). For k < L this is Hugging Face's
`hidden_states[k]`; for k = L it is taken before the final norm. Features of several
blocks are concatenated in the order given.

Where: a forward hook on each chosen block keeps only the rows vLLM computes logits
for, one per request in batch order (row i = token `query_start_loc[i + 1] - 1`, the
request's latest token), so a logits processor reads the features of batch row i at the
step it sees logits row i. Hooks only fire with `enforce_eager=True` (compiled graphs
and CUDA graphs run no Python).

This module needs torch and a vLLM V1 model runner object, but imports neither vLLM nor
server/calibration code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder blocks of a vLLM causal LM (`model.model.layers` for Llama/Qwen/...)."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"cannot find the decoder layers of {type(model).__name__}")
    return layers


class StepCapture:
    """Per-step features of the logits rows, written by hooks, read by logits processors."""

    def __init__(self, runner, layers: Sequence[int]) -> None:
        self.layers = tuple(layers)
        self._runner = runner
        self._parts: list[torch.Tensor | None] = [None] * len(self.layers)
        # Blocks run in order, so the lowest chosen one finds this step's rows for the rest.
        self._first = self.layers.index(min(self.layers))
        self._step_rows: torch.Tensor | None = None
        self._handles = []
        blocks = decoder_layers(runner.get_model())
        for k in self.layers:
            if not 1 <= k <= len(blocks):
                raise ValueError(f"layer {k} outside 1..{len(blocks)}")
        for slot, k in enumerate(self.layers):
            self._handles.append(blocks[k - 1].register_forward_hook(self._hook(slot)))

    def _rows(self) -> torch.Tensor:
        n = self._runner.input_batch.num_reqs
        # query_start_loc is filled before the forward pass of the same step.
        starts = self._runner.query_start_loc.cpu[1 : n + 1]
        return (starts - 1).to(torch.long)

    def _hook(self, slot: int):
        def hook(module, args, output) -> None:
            hidden, residual = output if isinstance(output, tuple) else (output, None)
            if slot == self._first or self._step_rows is None:
                self._step_rows = self._rows().to(hidden.device)
            rows = self._step_rows
            if len(rows) < hidden.shape[0]:  # else a decode-only step: row i is token i
                hidden = hidden[rows]  # a copy
                residual = None if residual is None else residual[rows]
            elif residual is None:
                hidden = hidden.clone()
            # A new tensor either way: the next block updates its inputs in place.
            part = hidden if residual is None else hidden + residual
            self._parts[slot] = part.float()

        return hook

    def row(self, index: int) -> torch.Tensor:
        """Concatenated features (float32) of batch row `index` at the current step."""
        parts = self._parts
        if any(p is None for p in parts):
            raise RuntimeError("no features captured at this step (is enforce_eager on?)")
        return torch.cat([p[index] for p in parts])  # type: ignore[index]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


_CAPTURE: StepCapture | None = None


def install(runner, layers: Sequence[int]) -> StepCapture:
    """Install the hooks in this (worker) process; replaces an earlier installation."""
    global _CAPTURE
    if _CAPTURE is not None:
        _CAPTURE.remove()
    _CAPTURE = StepCapture(runner, layers)
    return _CAPTURE


def current() -> StepCapture | None:
    """The capture installed in this process, if any."""
    return _CAPTURE
