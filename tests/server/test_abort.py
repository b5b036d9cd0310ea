"""A client that goes away has its request aborted in the engine."""

import asyncio
import time

import httpx

from tests.conftest import API_KEY, MODEL, problem_prompt

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# 16 x 470 tokens: the testbed is tiny and fast, but this takes it over a second.
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": problem_prompt()}],
    "max_tokens": 470,
    "n": 16,
    "thinkctl": {"min_thinking_tokens": 460},
}


def running(server) -> float:
    return server.metric("vllm:num_requests_running") + server.metric("vllm:num_requests_waiting")


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return False


def aborted(server) -> float:
    return server.metric('thinkctl_requests_total{status="aborted"}')


async def test_non_streaming_client_disconnect_aborts(server):
    before = aborted(server)
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
        task = asyncio.create_task(http.post("/v1/chat/completions", json=LONG, timeout=60))
        await asyncio.sleep(0.5)
        task.cancel()  # closes the connection mid-request
    # The server saw the client go (rather than the request finishing), and the engine
    # holds nothing within 2 s.
    assert await wait_until(lambda: aborted(server) == before + 1, 5)
    assert await wait_until(lambda: running(server) == 0, 2)


async def test_streaming_client_disconnect_aborts(server):
    before = aborted(server)
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            async for line in r.aiter_lines():
                if '"reasoning"' in line:  # generation is under way: leave now
                    break
    assert await wait_until(lambda: aborted(server) == before + 1, 5)
    assert await wait_until(lambda: running(server) == 0, 2)
