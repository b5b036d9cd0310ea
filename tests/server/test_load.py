"""64 concurrent streaming clients on the testbed: no errors, every response well-formed."""

import asyncio

from tests.conftest import MODEL

CLIENTS = 64


async def one(aclient, i: int) -> dict:
    from thinkctl.testbed import tasks

    budget = i % 2 == 0  # half are cut by a budget, half think to their natural end
    problem = tasks.held_out("test")[i]
    extra = {"return_token_ids": True}
    if budget:
        extra["thinkctl"] = {"max_thinking_tokens": 20}
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": problem.prompt()}], max_tokens=450,
        temperature=0.6, seed=i, stream=True, stream_options={"include_usage": True},
        extra_body=extra,
    )  # fmt: skip
    content, tokens, trace, usage = "", 0, None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            content += c.delta.content or ""
            tokens += len(c.model_extra.get("token_ids") or [])
            if c.finish_reason is not None:
                trace = c.model_extra["thinkctl"]
    return {"budget": budget, "content": content, "tokens": tokens, "trace": trace,
            "usage": usage}  # fmt: skip


async def test_64_concurrent_streams(aclient, server):
    results = await asyncio.wait_for(
        asyncio.gather(*(one(aclient, i) for i in range(CLIENTS))), timeout=600
    )
    for r in results:
        trace, usage = r["trace"], r["usage"]
        assert trace is not None and usage is not None
        assert trace["exit_reason"] == ("budget" if r["budget"] else "natural")  # thinking closed
        assert "\\boxed{" in r["content"]  # an answer, also where the budget forced the exit
        assert usage.completion_tokens == r["tokens"]  # usage matches what was streamed
        assert usage.completion_tokens_details.reasoning_tokens == trace["thinking_tokens"]
        if r["budget"]:
            assert trace["thinking_tokens"] == 20
    assert server.metric("vllm:num_requests_running") == 0
