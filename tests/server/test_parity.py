"""vLLM's request fields: honoured with vLLM's meaning or refused with a 400 that names
them; a field nobody defines is a 400 too (never silently dropped). Logprobs, stop
strings and the answer reserve: tests/server/test_api_fields.py; tools and grammars:
tests/server/test_real_models.py."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import API_KEY, MODEL, problem_prompt
from thinkctl.engine.client import Engine
from thinkctl.server.config import ServerConfig
from thinkctl.server.plan import _sampling
from thinkctl.server.protocol import NOT_SERVED, ChatCompletionRequest

pytestmark = pytest.mark.engine
MESSAGES = [{"role": "user", "content": "compute 3 ; A + 4 ; B * 2 ; C - 5"}]


def _ask(client: openai.OpenAI, **body):
    body.setdefault("max_tokens", 40)
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, **body)


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"bogus_field": 1}, "bogus_field"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        # "auto" (the default with tools) on a server without a tool-call parser
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),  # no tools
        ({"structured_outputs": {"bogus": 1}}, "structured_outputs"),
        (
            {"structured_outputs": {"json": {}}, "response_format": {"type": "json_object"}},
            "structured_outputs",
        ),
        ({"use_beam_search": True}, "use_beam_search"),
        ({"logit_bias": {"Wait": -100}}, "logit_bias"),
    ],
)
def test_fields_not_served_are_a_400_naming_them(client, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, extra_body=extra)
    body = err.value.body
    assert body["param"] == param and body["type"] == "invalid_request_error", body


def test_vllms_defaults_of_fields_not_served_are_accepted(client):
    defaults = {k: v for k, v in NOT_SERVED.items() if v is not None}
    r = _ask(client, max_tokens=300, extra_body=defaults)
    assert r.choices[0].message.content


def _vllm_defaults() -> dict:
    """Every optional field of vLLM's own ChatCompletionRequest at its default value."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest as Vllm

    fields = Vllm.model_fields.items()
    return {f.alias or k: f.get_default(call_default_factory=True) for k, f in fields
            if not f.is_required() and k not in ("model", "messages")}  # fmt: skip


def test_every_field_of_vllms_request_at_its_default_is_a_200(server):
    body = {**_vllm_defaults(), "model": MODEL, "messages": MESSAGES, "max_tokens": 40}
    r = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120,
                   headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["id"] == f"chatcmpl-{body['request_id']}"  # vLLM's request_id, honoured


@pytest.mark.parametrize("extra", [{"n": None, "logprobs": None, "stream": None},
                                   {"stream": True, "stream_options": {
                                       "include_usage": False, "continuous_usage_stats": False}},
                                   {"bad_words": []}])  # fmt: skip
def test_nulls_and_empty_values_vllm_accepts_are_accepted(client, extra):
    stream = extra.pop("stream", None)
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20,
                                       stream=stream, extra_body=extra)  # fmt: skip
    if stream:
        assert any(chunk.choices for chunk in r)
    else:
        assert r.choices[0].finish_reason in ("stop", "length")


def test_continuous_usage_stats_count_the_tokens_so_far(client):
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=30, stream=True,
        extra_body={"stream_options": {"include_usage": True, "continuous_usage_stats": True}},
    )  # fmt: skip
    counts = [chunk.usage.completion_tokens for chunk in r]
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_an_unknown_key_in_a_message_is_a_400_naming_it(client):
    messages = [{"role": "user", "content": "compute 1 ; A + 1", "contnet": "typo"}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert err.value.body["param"] == "messages[0].contnet"


def test_an_assistant_turn_echoed_back_by_the_sdk_is_accepted(client):
    r = _ask(client)
    turn = r.choices[0].message.model_dump()  # refusal, audio, function_call, annotations: null
    follow = [*MESSAGES, turn, {"role": "user", "content": "compute 2 ; A + 2"}]
    assert client.chat.completions.create(model=MODEL, messages=follow, max_tokens=20).choices


def test_top_k_1_is_greedy_whatever_the_seed(client):
    outs = {_ask(client, temperature=1.0, seed=s, extra_body={"top_k": 1}).choices[0].message
            .content for s in range(3)}  # fmt: skip
    assert len(outs) == 1


def test_logit_bias_of_minus_100_keeps_a_token_out(client, tokenizer):
    wait = tokenizer.convert_tokens_to_ids("Wait")
    prompt = [{"role": "user", "content": problem_prompt(5)}]
    seen = 0
    for seed in range(4):
        for bias in ({}, {str(wait): -100}):
            r = client.chat.completions.create(
                model=MODEL, messages=prompt, max_tokens=200, temperature=0.6, seed=seed,
                extra_body={"return_token_ids": True, **({"logit_bias": bias} if bias else {})},
            )  # fmt: skip
            ids = r.choices[0].model_extra["token_ids"]
            if bias:
                assert wait not in ids
            else:
                seen += wait in ids
    assert seen  # the premise: without the bias the model does write the cue


def test_sampling_fields_reach_vllms_sampling_params():
    from types import SimpleNamespace

    req = ChatCompletionRequest(
        model="m", messages=MESSAGES, top_k=5, min_p=0.1, repetition_penalty=1.3,
        logit_bias={"7": -100}, min_tokens=3, stop_token_ids=[9], ignore_eos=True,
        skip_special_tokens=False,
    )  # fmt: skip
    info = SimpleNamespace(max_model_len=512, sampling_defaults={}, max_logprobs=20)
    sampling = _sampling(req, info, ServerConfig("m"), 10)
    params = Engine.params(sampling, None)  # the engine's own SamplingParams
    assert (params.top_k, params.min_p, params.repetition_penalty) == (5, 0.1, 1.3)
    assert params.logit_bias == {7: -100} and params.min_tokens == 3
    assert 9 in params.stop_token_ids and params.ignore_eos and not params.skip_special_tokens
