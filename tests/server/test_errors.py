"""Bad input gets an OpenAI-shaped 4xx, never a 500, and disturbs no other request."""

import asyncio

import httpx
import pytest

from tests.conftest import API_KEY, MODEL, problem_prompt

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MSG = [{"role": "user", "content": "Hi"}]


def ok(**overrides):
    return {"model": MODEL, "messages": MSG, "max_tokens": 4, **overrides}


def without(key):
    body = ok()
    del body[key]
    return body


BAD = {
    "not json": (b"{not json", 400, None),
    "body is a list": ([1, 2], 400, None),
    "no messages": (without("messages"), 400, "messages"),
    "no model": (without("model"), 400, "model"),
    "empty messages": (ok(messages=[]), 400, "messages"),
    "unknown role": (ok(messages=[{"role": "robot", "content": "x"}]), 400, "messages[0].role"),
    "content of wrong type": (ok(messages=[{"role": "user", "content": 5}]), 400, "messages[0].content"),
    "temperature not a number": (ok(temperature="hot"), 400, "temperature"),
    "temperature out of range": (ok(temperature=3), 400, "temperature"),
    "top_p zero": (ok(top_p=0), 400, "top_p"),
    "negative max_tokens": (ok(max_tokens=-1), 400, "max_tokens"),
    "n zero": (ok(n=0), 400, "n"),
    "seed beyond 64 bits": (ok(seed=2**70), 400, "seed"),
    "unknown reasoning_effort": (ok(reasoning_effort="extreme"), 400, "reasoning_effort"),
    "unknown model": (ok(model="gpt-9"), 404, "model"),
    "prompt too long": (ok(messages=[{"role": "user", "content": "hello " * 3000}]), 400, "messages"),
    "max_tokens beyond the context": (ok(max_tokens=5000), 400, "max_tokens"),
    "unknown thinkctl field": (ok(thinkctl={"bogus": 1}), 400, "thinkctl.bogus"),
    "min above max thinking": (
        ok(thinkctl={"min_thinking_tokens": 9, "max_thinking_tokens": 3}), 400, "thinkctl"),
    "budgets that disagree": (
        ok(thinking_token_budget=5, thinkctl={"max_thinking_tokens": 6}), 400, "thinking_token_budget"),
    "thinking_token_budget below -1": (ok(thinking_token_budget=-5), 400, "thinking_token_budget"),
    "stream not a bool": (ok(stream="sometimes"), 400, "stream"),
    "json_schema without a schema": (ok(response_format={"type": "json_schema"}), 400,
                                     "response_format"),
    "two grammars": (ok(response_format={"type": "json_object"}, structured_outputs={"regex": "a"}),
                     400, "structured_outputs"),
    "top_logprobs without logprobs": (ok(top_logprobs=2), 400, "top_logprobs"),
    "a tool call with arguments that are not JSON": (ok(messages=[
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
         "function": {"name": "f", "arguments": "{not json"}}]}]), 400, "messages"),
    "ts strength zero": (ok(thinkctl={"ts": {"strength": 0}}), 400, "thinkctl.ts.strength"),
    "top-h alpha above one": (ok(thinkctl={"top_h": {"alpha": 1.5}}), 400, "thinkctl.top_h.alpha"),
    "effort above one": (ok(thinkctl={"effort": 2}), 400, "thinkctl.effort"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_an_openai_error(server, name):
    body, status, param = BAD[name]
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{server.base_url}/v1/chat/completions", headers=AUTH, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param or (err["param"] or "").startswith(param), err


def test_unknown_route_is_an_openai_404(server):
    r = httpx.get(f"{server.base_url}/v1/nothing", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["message"]


async def test_bad_requests_do_not_disturb_a_running_one(server, aclient):
    good = asyncio.create_task(
        aclient.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": problem_prompt()}],
            max_tokens=120,
            temperature=0,
            extra_body={"thinkctl": {"min_thinking_tokens": 100}},
        )  # fmt: skip
    )
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        for body, status, _ in BAD.values():
            kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
            r = await http.post("/v1/chat/completions", **kwargs)
            assert r.status_code == status
    result = await good
    assert result.usage.completion_tokens_details.reasoning_tokens >= 100
    assert httpx.get(f"{server.base_url}/health").status_code == 200
