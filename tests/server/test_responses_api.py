"""POST /v1/responses through the `openai` SDK (client.responses.create and .stream) on the
real server: the reasoning and message items, usage with reasoning tokens, the control
trace, effort levels, and the fields a stateless server refuses."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.responses import Response

from tests.conftest import API_KEY, MODEL, problem_prompt

pytestmark = pytest.mark.engine
QUESTION = problem_prompt(difficulty=5)  # thinks ~150 tokens


def test_a_response_has_its_reasoning_and_message_items_and_the_trace(server, client):
    body = {"model": MODEL, "input": QUESTION, "max_output_tokens": 400, "temperature": 0}
    raw = httpx.post(f"{server.base_url}/v1/responses", json=body, timeout=120,
                     headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert raw.status_code == 200, raw.text
    r = Response.model_validate(raw.json())  # OpenAI's own model, validated strictly
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].content[0].text and "\\boxed" in r.output_text
    assert r.status == "completed" and r.usage.output_tokens_details.reasoning_tokens > 0
    trace = raw.json()["thinkctl"]
    assert trace["thinking_tokens"] == r.usage.output_tokens_details.reasoning_tokens


def test_the_stream_folds_into_the_same_response(client):
    kwargs = {"model": MODEL, "input": QUESTION, "max_output_tokens": 400, "temperature": 0}
    plain = client.responses.create(**kwargs)
    types = []
    with client.responses.stream(**kwargs) as stream:
        for event in stream:
            types.append(event.type)
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.reasoning_text.delta" in types and "response.output_text.delta" in types
    assert final.output_text == plain.output_text
    assert final.output[0].content[0].text == plain.output[0].content[0].text
    assert final.usage.model_dump() == plain.usage.model_dump()
    streamed = [e for e in client.responses.create(**kwargs, stream=True)]
    assert [e.sequence_number for e in streamed] == list(range(len(streamed)))


def test_a_cut_off_response_is_incomplete(client):
    r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=30,
                                extra_body={"thinkctl": {"answer_reserve": 0}})  # fmt: skip
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 30


def test_effort_levels_give_monotone_reasoning_tokens(client):
    tokens = []
    for level in ("none", "low", "medium", "high"):
        r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=400,
                                    temperature=0, reasoning={"effort": level})  # fmt: skip
        tokens.append(r.usage.output_tokens_details.reasoning_tokens)
    assert tokens == sorted(tokens) and tokens[0] == 0 and tokens[-1] > tokens[1], tokens


def test_thinkctls_controls_reach_a_response(client):
    r = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=400,
                                extra_body={"thinkctl": {"max_thinking_tokens": 20}})  # fmt: skip
    trace = r.model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] <= 21


def test_instructions_and_items_become_the_conversation(client):
    items = [{"role": "user", "content": "compute 1 ; A + 1"},
             {"type": "message", "role": "assistant",
              "content": [{"type": "output_text", "text": "\\boxed{ 2 }"}]},
             {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]  # fmt: skip
    r = client.responses.create(model=MODEL, input=items, instructions="Answer briefly.",
                                max_output_tokens=400, temperature=0)  # fmt: skip
    assert r.instructions == "Answer briefly." and "\\boxed" in r.output_text


@pytest.mark.parametrize("extra, param", [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
    ({"bogus": 1}, "bogus"),
    ({"max_output_tokens": 10**6}, "max_output_tokens"),
    ({"input": [{"role": "user", "content": "x", "bogus": 1}]}, "input[0].message.bogus"),
    ({"tools": [{"type": "function", "name": "f"}]}, "tool_choice"),  # no tool-call parser
])  # fmt: skip
def test_what_a_stateless_server_cannot_honour_is_a_400_naming_it(client, extra, param):
    body = {"model": MODEL, "input": "compute 1 ; A + 1", **extra}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/responses", body=body, cast_to=httpx.Response)
    assert err.value.body["param"] == param, err.value.body
