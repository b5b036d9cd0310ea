"""POST /v1/chat/completions, streaming (SSE) and not."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import suppress
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from thinkctl.errors import EngineError, RequestTimeout
from thinkctl.server import metrics
from thinkctl.server.deps import AppContext, get_ctx, require_api_key
from thinkctl.server.errors import error_body
from thinkctl.server.generation import ChoiceDelta, Generation
from thinkctl.server.plan import plan
from thinkctl.server.protocol import ChatCompletionRequest, usage

router = APIRouter(dependencies=[Depends(require_api_key)])
T = TypeVar("T")


def _prepare(req: ChatCompletionRequest, ctx: AppContext) -> Generation:
    """The request's plan (server/plan.py), ready to run; every refusal is raised here."""
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    try:
        return Generation(ctx.engine, ctx.info, plan(req, ctx.info, ctx.config), request_id)
    except EngineError as exc:  # sampling values vLLM refuses
        raise exc.as_api_error() from exc


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work`; cancel it (which aborts its engine requests) if the client goes away."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server itself is cancelling this handler
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest, request: Request) -> Response:
    ctx = get_ctx(request)
    gen = _prepare(req, ctx)
    created = int(time.time())
    head = {
        "id": gen.choices[0].request_id.rsplit("-", 1)[0],
        "created": created,
        "model": ctx.info.name,
    }
    field = ctx.config.reasoning_field
    timeout = ctx.config.limits.request_timeout_s
    slot = ctx.admission.slot()
    await slot.__aenter__()  # a 429/503 here, before any work; released when the work ends
    if req.stream:
        chunks = _until_disconnect_stream(request, _sse(gen, req, head, field), timeout)
        return StreamingResponse(_released(chunks, slot), media_type="text/event-stream")
    started = time.monotonic()
    try:
        work = _until_disconnect(request, _collect(gen, req, head, field))
        body = await asyncio.wait_for(work, timeout)
    except TimeoutError as exc:  # wait_for cancelled the work, which aborts its engine requests
        metrics.REQUESTS.labels("error").inc()
        raise _timed_out(timeout) from exc
    except EngineError as exc:
        metrics.REQUESTS.labels("error").inc()
        raise exc.as_api_error() from exc
    finally:
        await slot.__aexit__(None, None, None)
    if body is None:
        metrics.REQUESTS.labels("aborted").inc()
        return Response(status_code=499)
    metrics.REQUESTS.labels("ok").inc()
    metrics.LATENCY.observe(time.monotonic() - started)
    return JSONResponse(body)


def _timed_out(timeout: float | None) -> RequestTimeout:
    return RequestTimeout(
        f"The request ran past this server's limit of {timeout:g} s and was stopped.",
        None, "request_timeout",
    )  # fmt: skip


async def _released(chunks: AsyncIterator[str], slot) -> AsyncIterator[str]:
    """`chunks`, then the admission slot back, however the stream ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await slot.__aexit__(None, None, None)


async def _until_disconnect_stream(
    request: Request, chunks: AsyncIterator[str], timeout: float | None = None
) -> AsyncIterator[str]:
    """Pass `chunks` on until the client goes away, then close them (aborting the engine
    requests). Starlette no longer cancels a streaming response when the client leaves
    (ASGI 2.4 servers report it only through `receive`), so this watches for it. Past
    `timeout` seconds the stream ends with an error event and [DONE]."""
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                if deadline is None:
                    chunk = await anext(chunks)
                else:  # a task per chunk: only paid when a timeout is set
                    chunk = await asyncio.wait_for(anext(chunks), deadline - time.monotonic())
            except StopAsyncIteration:
                return
            except TimeoutError:
                metrics.REQUESTS.labels("error").inc()
                err = _timed_out(timeout)
                yield _sse_data(error_body(err.message, err.type, err.param, err.code))
                yield "data: [DONE]\n\n"
                return
            if watcher.done():
                return
            yield chunk
    finally:
        watcher.cancel()
        await chunks.aclose()


async def _collect(gen: Generation, req: ChatCompletionRequest, head: dict, field: str) -> dict:
    parts: dict[int, dict[str, list]] = {c.index: {"r": [], "c": [], "lp": [], "tools": []}
                                         for c in gen.choices}  # fmt: skip
    async for d in gen.stream():
        parts[d.index]["r"].append(d.reasoning)
        parts[d.index]["c"].append(d.content)
        parts[d.index]["lp"].extend(d.logprobs or ())
        parts[d.index]["tools"].extend(d.tool_calls or ())
    choices = []
    for c in gen.choices:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(parts[c.index]["c"])}
        if c.tracker is not None and req.include_reasoning:
            message[field] = "".join(parts[c.index]["r"])
        if parts[c.index]["tools"]:
            message["tool_calls"] = parts[c.index]["tools"]
        choice: dict[str, Any] = {
            "index": c.index,
            "message": message,
            "finish_reason": c.finish_reason,
            "logprobs": {"content": parts[c.index]["lp"]} if req.logprobs else None,
            "thinkctl": c.trace.model_dump() if c.trace else None,
        }
        if req.return_token_ids:
            choice["token_ids"] = c.token_ids
        choices.append(choice)
    body = {**head, "object": "chat.completion", "choices": choices}
    body["usage"] = usage(len(gen.prompt_ids), gen.completion_tokens, gen.reasoning_tokens)
    if req.return_token_ids:
        body["prompt_token_ids"] = gen.prompt_ids
    return body


def _sse_data(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _sse(
    gen: Generation, req: ChatCompletionRequest, head: dict, field: str
) -> AsyncIterator[str]:
    base = {**head, "object": "chat.completion.chunk"}
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    started = time.monotonic()

    def chunk(choice: dict, **extra: Any) -> str:
        obj = {**base, "choices": [choice], **extra}
        if include_usage:
            obj["usage"] = None  # OpenAI: null on every chunk but the last
        return _sse_data(obj)

    def roles() -> Iterator[str]:
        # The role comes first, once per choice, as OpenAI sends it; like vLLM, only once
        # the engine has produced something, so a client's time to first chunk includes
        # queueing and prefill (what TTFT means when benchmarks compare us with vLLM).
        ids = {"prompt_token_ids": gen.prompt_ids} if req.return_token_ids else {}
        for c in gen.choices:
            role = {"role": "assistant", "content": ""}
            yield chunk({"index": c.index, "delta": role, "logprobs": None,
                         "finish_reason": None}, **ids)  # fmt: skip

    sent_role = False
    try:
        async for d in gen.stream():
            if not sent_role:
                sent_role = True
                for r in roles():
                    yield r
            if (d.reasoning or d.content or d.finish_reason is not None or req.return_token_ids
                    or d.logprobs):  # fmt: skip
                yield from_delta(d, gen, req, field, chunk)  # a delimiter alone sends nothing
    except EngineError as exc:
        metrics.REQUESTS.labels("error").inc()
        err = exc.as_api_error()
        yield _sse_data(error_body(err.message, err.type, err.param, err.code))
        yield "data: [DONE]\n\n"
        return
    except (asyncio.CancelledError, GeneratorExit):
        # A client that leaves cancels us mid-await, or closes us while suspended at a yield.
        metrics.REQUESTS.labels("aborted").inc()
        raise
    if not sent_role:
        for r in roles():
            yield r
    metrics.REQUESTS.labels("ok").inc()
    metrics.LATENCY.observe(time.monotonic() - started)
    if include_usage:
        u = usage(len(gen.prompt_ids), gen.completion_tokens, gen.reasoning_tokens)
        yield _sse_data({**base, "choices": [], "usage": u})
    yield "data: [DONE]\n\n"


def from_delta(
    d: ChoiceDelta, gen: Generation, req: ChatCompletionRequest, field: str, chunk
) -> str:
    delta: dict[str, Any] = {}
    if d.reasoning and req.include_reasoning:
        delta[field] = d.reasoning
    if d.content:
        delta["content"] = d.content
    if d.tool_calls:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(d.tool_calls)]
    choice: dict[str, Any] = {
        "index": d.index,
        "delta": delta,
        "logprobs": {"content": d.logprobs} if d.logprobs is not None else None,
        "finish_reason": d.finish_reason,
    }
    if req.return_token_ids:
        choice["token_ids"] = d.token_ids
    if d.finish_reason is not None:
        trace = gen.choices[d.index].trace
        choice["thinkctl"] = trace.model_dump() if trace else None
    return chunk(choice)
