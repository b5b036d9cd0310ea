"""The AMX plugin is registered where vLLM looks for general plugins, and is safe to call
more than once (vLLM loads plugins in each process, maybe several times)."""

from importlib.metadata import entry_points

from thinkctl.engine.cpu_amx import request_amx


def test_vllm_finds_the_plugin_and_it_can_run_twice():
    (ep,) = [e for e in entry_points(group="vllm.general_plugins") if e.name == "thinkctl_cpu_amx"]
    assert ep.load() is request_amx
    request_amx()
    request_amx()
