"""Sampling defaults in vLLM's order (server/plan.py): the request's value, else the
preset's, else the model folder's generation config (as vLLM reads it), else vLLM's
neutral value; no engine (tests/server/test_vllm_parity.py checks it against vLLM)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.models.test_presets import Served
from thinkctl.errors import InvalidRequest
from thinkctl.server.plan import plan, sampling_defaults
from thinkctl.server.protocol import ChatCompletionRequest

GENERATION = {"temperature": 0.3, "top_p": 0.5, "top_k": 7, "min_p": 0.2,
              "repetition_penalty": 1.1, "max_tokens": 100}  # fmt: skip
QWEN3 = "Qwen/Qwen3-0.6B"  # preset: T 0.6, top-p 0.95, top-k 20, min-p 0


def sampled(served: Served, generation: dict, **body) -> dict:
    info = dataclasses.replace(served.info, sampling_defaults=generation)
    req = ChatCompletionRequest(model=info.name, messages=[{"role": "user", "content": "x"}],
                                **body)  # fmt: skip
    return plan(req, info, served.config).sampling


def test_the_generation_config_fills_what_the_request_leaves_unset():
    s = Served("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    s.config = dataclasses.replace(s.config, preset=None, default_max_tokens=None)
    got = sampled(s, GENERATION)
    assert {k: got[k] for k in GENERATION} == GENERATION
    assert sampled(s, GENERATION, temperature=0.9, top_k=2)["temperature"] == 0.9
    neutral = sampled(s, {})
    assert (neutral["temperature"], neutral["top_p"], neutral["top_k"]) == (1.0, 1.0, 0)


def test_the_preset_goes_over_the_generation_config_and_the_request_over_both():
    s = Served(QWEN3)
    got = sampled(s, GENERATION)
    assert (got["temperature"], got["top_p"], got["top_k"], got["min_p"]) == (0.6, 0.95, 20, 0)
    assert got["repetition_penalty"] == 1.1  # the preset says nothing of it
    assert sampled(s, GENERATION, top_k=3, min_p=0.1)["top_k"] == 3
    info = dataclasses.replace(s.info, sampling_defaults=GENERATION)
    assert sampling_defaults(info, s.config) == {
        **GENERATION,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "min_p": 0.0,
    }
    none = sampled(s, GENERATION, reasoning_effort="none")  # the card's non-thinking values
    assert (none["temperature"], none["top_p"], none["top_k"]) == (0.7, 0.8, 20)


def test_the_generation_configs_max_new_tokens_is_the_default_max_tokens():
    s = Served("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    s.config = dataclasses.replace(s.config, preset=None, default_max_tokens=None)
    assert sampled(s, {"max_tokens": 100})["max_tokens"] == 100
    assert sampled(s, {"max_tokens": 100}, max_tokens=7)["max_tokens"] == 7


@pytest.mark.parametrize("limit, top, ok", [(20, 20, True), (20, 21, False), (50, 40, True),
                                            (-1, 1000, True)])  # fmt: skip
def test_top_logprobs_follow_max_logprobs(limit, top, ok):
    s = Served("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    s.info = dataclasses.replace(s.info, max_logprobs=limit)
    if ok:
        assert sampled(s, {}, logprobs=True, top_logprobs=top)["logprobs"] == top
        return
    with pytest.raises(InvalidRequest) as err:
        sampled(s, {}, logprobs=True, top_logprobs=top)
    assert err.value.param == "top_logprobs"
