"""Residual-stream features captured inside vLLM's worker, the same way for calibration
and serving (so a probe sees at serving time exactly what it was trained on).

Definition: the feature of block k (1-based, k = 1..L) at a position is the residual
stream after decoder block k, i.e. vLLM's layer output `hidden + residual` (vLLM fuses
the residual add into the next norm). For k < L this is Hugging Face's
`hidden_states[k]`; for k = L it is taken before the final norm. Features of several
blocks are concatenated in the order given.

Where: a forward hook on each chosen block gathers the rows vLLM computes logits for,
one per request in batch order (row i = token `query_start_loc[i + 1] - 1`, the
request's latest token), into a buffer allocated once, so a logits processor reads the
features of batch row i at the step it sees logits row i.

Compiled graphs: the hooks are registered right after the model loads, before vLLM
traces it, and their body has no Python branches on data and no shape that depends on
the batch's contents: index arithmetic on the runner's persistent `query_start_loc`
tensor and an in-place copy into the buffer. So Dynamo traces them into vLLM's compiled
graph and they run there, as they run in eager mode; `enforce_eager` is not needed.
vLLM's compile cache is keyed on the model's code and config, not on hooks, so a worker
with hooks must not load or save it (`VLLM_DISABLE_COMPILE_CACHE`, set by whoever sets
`LAYERS_ENV`). `thinkctl_capture_written` (engine/worker.py) lets the caller check after a
real request that the hooks ran, whatever the engine compiled.

This module needs torch and a vLLM model runner object, never vLLM itself: the engine
package's worker extension (engine/worker.py) installs the hooks once the model has loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

# Comma-separated 1-based block numbers; set in the environment of the process that starts
# the engine, read in the worker when the model has loaded.
LAYERS_ENV = "THINKCTL_CAPTURE_LAYERS"


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder blocks of a vLLM causal LM (`model.model.layers` for Llama/Qwen/...)."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"cannot find the decoder layers of {type(model).__name__}")
    return layers


def layers_from_env() -> tuple[int, ...]:
    raw = os.environ.get(LAYERS_ENV, "")
    return tuple(int(k) for k in raw.split(",") if k.strip())


def environment(layers: Sequence[int]) -> dict[str, str]:
    """What the engine's processes need in their environment to capture `layers`."""
    return {LAYERS_ENV: ",".join(str(k) for k in layers), "VLLM_DISABLE_COMPILE_CACHE": "1"}


class StepCapture:
    """Per-step features of the logits rows, written by hooks, read by logits processors.

    `query_start_loc` is the runner's persistent (max_rows + 1,) tensor of cumulative token
    counts; `max_rows` its number of request slots."""

    def __init__(
        self,
        blocks: torch.nn.ModuleList,
        layers: Sequence[int],
        query_start_loc: torch.Tensor,
        max_rows: int,
        hidden_size: int,
    ) -> None:
        self.layers = tuple(layers)
        for k in self.layers:
            if not 1 <= k <= len(blocks):
                raise ValueError(f"layer {k} outside 1..{len(blocks)}")
        # One (rows, layers x hidden) table, each hook writing its own columns: a step's
        # features of some rows are one index_select, not one per layer and a cat.
        self._table = torch.zeros(max_rows, len(self.layers) * hidden_size,
                                  dtype=torch.float32, device=query_start_loc.device)  # fmt: skip
        self._buffers = [self._table.narrow(1, i * hidden_size, hidden_size)
                         for i in range(len(self.layers))]  # fmt: skip
        self._handles = [
            blocks[k - 1].register_forward_hook(_gather_into(buf, query_start_loc, max_rows))
            for k, buf in zip(self.layers, self._buffers, strict=True)
        ]

    @classmethod
    def for_runner(cls, runner, layers: Sequence[int]) -> StepCapture:
        """Hooks on a vLLM V1 model runner's model (CPU or GPU)."""
        return cls(
            decoder_layers(runner.get_model()),
            layers,
            runner.query_start_loc.gpu,  # on CPU the same tensor as .cpu
            runner.max_num_reqs,
            runner.model_config.get_hidden_size(),
        )

    def row(self, index: int) -> torch.Tensor:
        """Concatenated features (float32) of batch row `index` at the current step."""
        return self._table[index].clone()

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The same for several rows at once: (len(index), features)."""
        return self._table.index_select(0, index.to(self._table.device))

    def reset(self) -> None:
        self._table.zero_()

    def written(self) -> bool:
        """Whether every hook wrote since the last reset (a residual stream is never all 0)."""
        return all(bool(b.any()) for b in self._buffers)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _gather_into(buffer: torch.Tensor, query_start_loc: torch.Tensor, max_rows: int):
    def hook(module, args, output) -> None:
        hidden, residual = output if isinstance(output, tuple) else (output, None)
        stream = hidden if residual is None else hidden + residual
        tokens = stream.shape[0]
        # At most one logits row per scheduled token, and never more than the slots. Slots
        # past the batch hold stale offsets: clamped, they read a valid row nobody uses.
        rows = torch.sym_min(max_rows, tokens)
        index = (query_start_loc[1 : rows + 1].long() - 1).clamp(0, tokens - 1)
        buffer[:rows].copy_(stream.index_select(0, index))

    return hook


def is_fresh_step(output_len: int, seen: int) -> bool:
    """Whether the step at which a row holds `output_len` output tokens, after `seen` at
    its previous step, is the decode step that processes its newest token: the only step
    whose captured features are that token's. Re-prefill after preemption never is (its
    logits rows are other tokens). The server's processor and the calibration recorder
    both read features by this rule, so a probe sees what it was trained on."""
    return output_len > 0 and output_len == seen + 1


_CAPTURE: StepCapture | None = None


def install(runner, layers: Sequence[int]) -> StepCapture:
    """Install the hooks in this (worker) process; replaces an earlier installation."""
    global _CAPTURE
    if _CAPTURE is not None:
        _CAPTURE.remove()
    _CAPTURE = StepCapture.for_runner(runner, layers)
    return _CAPTURE


def current() -> StepCapture | None:
    """The capture installed in this process, if any."""
    return _CAPTURE


# The start-up check's request (reset, serve it, ask): a two-token prefill and one decode step.
CHECK_PROMPT_IDS = [0, 1]
CHECK_MAX_TOKENS = 2


def require_written(installed: Sequence[bool], written: Sequence[bool]) -> None:
    """The start-up check's verdict over every worker's answers: a probe fed stale zeros
    would exit on noise, so an engine whose hooks did not write must not serve it."""
    if not all(installed):
        raise RuntimeError("a worker has no hidden-state capture installed")
    if not all(written):
        raise RuntimeError(
            "the probe's hidden-state hooks did not run inside the engine's forward pass; "
            "start the engine with --enforce-eager (enforce_eager=True)"
        )
