"""thinkctl's worker extension (`worker_extension_cls`): code that must run inside
vLLM's worker process. vLLM imports this module there when the worker starts, before
the model runner exists, which is when the CPU seed fix has to be in place."""

from probes import capture
from server.engine import cpu_seed

cpu_seed.install()


class ThinkctlWorkerExtension:
    """Mixed into vLLM's Worker; methods here are callable by `collective_rpc`."""

    def thinkctl_ping(self) -> bool:
        return cpu_seed._INSTALLED

    def thinkctl_install_capture(self, layers: list[int]) -> bool:
        """Hook the probe's layers (needs enforce_eager: hooks do not run in graphs)."""
        capture.install(self.model_runner, layers)
        return True
