"""thinkctl's worker extension (`worker_extension_cls`): code that must run inside
vLLM's worker process. vLLM imports this module there when the worker starts, before
the model runner exists, which is when the CPU seed fix and the hook that installs the
probe's capture once the model has loaded have to be in place."""

from probes import capture
from server.engine import cpu_seed

cpu_seed.install()
capture.install_on_load()


class ThinkctlWorkerExtension(capture.CaptureExtension):
    """Mixed into vLLM's Worker; methods here are callable by `collective_rpc`."""

    def thinkctl_ping(self) -> bool:
        return cpu_seed._INSTALLED
