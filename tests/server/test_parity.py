"""vLLM's request fields: honoured with vLLM's meaning or refused with a 400 that names
them; a field nobody defines is a 400 too (never silently dropped). Logprobs, stop
strings and the answer reserve: tests/server/test_api_fields.py; tools and grammars:
tests/server/test_real_models.py."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import MODEL, problem_prompt
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
    sampling = _sampling(req, SimpleNamespace(max_model_len=512), ServerConfig("m"), 10)
    params = Engine.params(sampling, None)  # the engine's own SamplingParams
    assert (params.top_k, params.min_p, params.repetition_penalty) == (5, 0.1, 1.3)
    assert params.logit_bias == {7: -100} and params.min_tokens == 3
    assert 9 in params.stop_token_ids and params.ignore_eos and not params.skip_special_tokens
