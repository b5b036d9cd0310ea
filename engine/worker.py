"""thinkctl's worker extension (`worker_extension_cls`), for the server's engine and the
calibration's alike: code that must run inside vLLM's worker process.

vLLM imports this module there when the worker starts, before the model runner exists,
which is when the CPU seed fix and the patch that installs the probe's capture once the
model has loaded (probes/capture.py) have to be in place.
"""

from __future__ import annotations

from thinkctl.engine import cpu_seed
from thinkctl.probes import capture

_PATCHED = False


def install_capture_on_load() -> None:
    """Make vLLM's worker install the capture of `capture.LAYERS_ENV` as soon as its model
    has loaded, before the engine's first forward pass (where vLLM traces and compiles
    it). Idempotent; nothing is captured when the variable is unset."""
    global _PATCHED
    if _PATCHED:
        return
    from vllm.v1.worker.gpu_worker import Worker  # CPUWorker subclasses it

    original = Worker.load_model

    def load_model(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        layers = capture.layers_from_env()
        if layers:
            capture.install(self.model_runner, layers)

    Worker.load_model = load_model
    _PATCHED = True


cpu_seed.install()
install_capture_on_load()


class ThinkctlWorkerExtension:
    """Mixed into vLLM's Worker; its methods are callable by `collective_rpc`."""

    def thinkctl_ping(self) -> bool:
        return cpu_seed._INSTALLED

    # The capture check: reset, serve a request, then ask whether every hook wrote.
    def thinkctl_capture_reset(self) -> bool:
        cap = capture.current()
        if cap is not None:
            cap.reset()
        return cap is not None

    def thinkctl_capture_written(self) -> bool:
        cap = capture.current()
        return cap is not None and cap.written()

    def thinkctl_take_records(self) -> dict[str, list[tuple[int, bytes]]]:
        """The calibration recorder's cue features since the last call (engine/recorder.py)."""
        from thinkctl.engine import recorder

        return recorder.take_records()
