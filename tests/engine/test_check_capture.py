"""The start-up check of the probe's capture (engine/launch.py), on a stand-in for
AsyncLLM whose workers report what a real engine's would."""

import asyncio

import pytest

from thinkctl.engine.launch import check_capture


class Engine:
    def __init__(self, installed: bool, writes: bool) -> None:
        self.installed, self.writes, self.calls = installed, writes, []

    async def collective_rpc(self, method: str):
        self.calls.append(method)
        if method == "thinkctl_capture_reset":
            return [self.installed]
        return [self.writes and "generate" in self.calls]

    async def generate(self, prompt, params, request_id):
        self.calls.append("generate")
        yield None


def test_a_capture_that_writes_passes_after_a_real_request():
    engine = Engine(installed=True, writes=True)
    asyncio.run(check_capture(engine))
    assert engine.calls == ["thinkctl_capture_reset", "generate", "thinkctl_capture_written"]


@pytest.mark.parametrize(
    "installed, writes, message",
    [(False, False, "no hidden-state capture"), (True, False, "--enforce-eager")],
)
def test_a_capture_that_does_not_run_refuses(installed, writes, message):
    with pytest.raises(RuntimeError, match=message):
        asyncio.run(check_capture(Engine(installed, writes)))
