"""One model-runner choice (engine/runner.py) for the server's engine and the offline one,
and vLLM's own V2 loader taking thinkctl's V2 adapter; no engine is started."""

from __future__ import annotations

import os

import pytest
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.v1.worker.gpu.sample.logits_processor import loader

from thinkctl.engine import launch, offline, runner
from thinkctl.errors import CommandError


class Started(Exception):
    """Raised by the stand-in engine constructors, carrying what the engine would see."""


def _seen(**kwargs) -> dict:
    processors = kwargs.get("logits_processors") or getattr(
        kwargs.get("engine_args"), "logits_processors", None)  # fmt: skip
    return {"v2": os.environ.get("VLLM_USE_V2_MODEL_RUNNER"), "processors": processors,
            "trace": os.environ.get("THINKCTL_TRACE_ADDR"),
            "ray_copies": os.environ.get(launch.RAY_PREFIXES_ENV)}  # fmt: skip


@pytest.fixture
def stand_ins(monkeypatch):
    def async_llm(engine_args, **_):
        raise Started(_seen(engine_args=engine_args))

    def llm(**kwargs):
        raise Started(_seen(**kwargs))

    monkeypatch.setattr(launch.AsyncLLM, "from_engine_args", staticmethod(async_llm))
    monkeypatch.setattr("vllm.LLM", llm)
    for key in (
        runner.RUNNER_ENV,
        "VLLM_USE_V2_MODEL_RUNNER",
        "THINKCTL_TRACE_ADDR",
        launch.RAY_PREFIXES_ENV,
    ):
        monkeypatch.delenv(key, raising=False)  # start_engine sets them: restored after
    return monkeypatch


def _server(layers=(), **engine: object) -> dict:
    with pytest.raises(Started) as got:
        launch.start_engine(AsyncEngineArgs(model="m", **engine), layers=layers)
    return got.value.args[0]


def _offline() -> dict:
    with pytest.raises(Started) as got:
        offline.OfflineEngine("m")
    return got.value.args[0]


@pytest.mark.parametrize("chosen, flag", [(None, "0"), ("v1", "0"), ("v2", "1")])
def test_the_server_and_the_offline_engine_make_the_same_choice(stand_ins, chosen, flag):
    if chosen:
        stand_ins.setenv(runner.RUNNER_ENV, chosen)
    assert _server()["v2"] == _offline()["v2"] == flag
    assert _server()["processors"] == list(runner.logits_processors(chosen or "v1"))


def test_what_v2_cannot_do_is_refused_with_the_runner_it_needs(stand_ins):
    stand_ins.setenv(runner.RUNNER_ENV, "v2")
    with pytest.raises(CommandError, match="--model-runner v1"):
        _server(layers=(3,))
    with pytest.raises(CommandError, match="V1 model runner"):
        offline.OfflineEngine("m", record_layers=(3,))
    with pytest.raises(CommandError, match="speculative"):
        launch.start_engine(AsyncEngineArgs(model="m", speculative_config={"method": "ngram"}))
    with pytest.raises(CommandError, match="not one of"):
        runner.choose("v3")


def test_vllms_v2_loader_takes_the_v2_adapter_and_refuses_the_v1_one():
    (v2,) = runner.logits_processors("v2")
    assert loader._load_v2_logitsprocs_by_fqcns([v2])[0].__name__ == "ThinkctlV2LogitsProcessor"
    with pytest.raises(ValueError, match="not a subclass"):
        loader._load_v2_logitsprocs_by_fqcns([runner.logits_processors("v1")[0]])


def test_ranks_on_other_nodes_get_a_tcp_channel_and_the_variables(stand_ins):
    local = _server()
    assert local["trace"].startswith("ipc://") and local["ray_copies"] is None
    for engine in ({"distributed_executor_backend": "ray"}, {"nnodes": 2}):
        seen = _server(**engine)
        assert seen["trace"].startswith("tcp://") and "THINKCTL_" in seen["ray_copies"]
