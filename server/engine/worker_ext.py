"""thinkctl's worker extension (`worker_extension_cls`): code that must run inside
vLLM's worker process. vLLM imports this module there when the worker starts, before
the model runner exists, which is when the CPU seed fix has to be in place."""

from server.engine import cpu_seed

cpu_seed.install()


class ThinkctlWorkerExtension:
    """Mixed into vLLM's Worker; methods here are callable by `collective_rpc`."""

    def thinkctl_ping(self) -> bool:
        return cpu_seed._INSTALLED
