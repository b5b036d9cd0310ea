"""A client that goes away has its request aborted in the engine."""

import asyncio
import time

import httpx

from tests.conftest import API_KEY, MODEL

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Long enough (several seconds on 2 cores) that it is surely still running at disconnect.
LONG = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Tell me a story."}],
    "max_tokens": 900,
    "thinkctl": {"min_thinking_tokens": 880},
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


async def test_non_streaming_client_disconnect_aborts(server):
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
        task = asyncio.create_task(http.post("/v1/chat/completions", json=LONG, timeout=60))
        assert await wait_until(lambda: running(server) >= 1, 20), "request never started"
        task.cancel()  # closes the connection mid-request
    assert await wait_until(lambda: running(server) == 0, 10)


async def test_streaming_client_disconnect_aborts(server):
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            lines = r.aiter_lines()
            for _ in range(5):
                await anext(lines)
            assert running(server) >= 1
    assert await wait_until(lambda: running(server) == 0, 10)
