"""What every generating route shares: the request's plan made ready (every refusal
raised before any work), the admission slot, the request timeout, the client going away,
and the request metrics. A route gives only its body and its stream of events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Protocol, TypeVar

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from thinkctl.errors import APIError, EngineError, RequestTimeout
from thinkctl.server import metrics
from thinkctl.server.deps import AppContext
from thinkctl.server.generation import Generation
from thinkctl.server.plan import plan
from thinkctl.server.protocol import ChatCompletionRequest

T = TypeVar("T")
# An error in the route's own stream format (the stream ends after it).
ErrorEvents = Callable[[APIError], Iterable[str]]


class JsonBody(Protocol):
    def dump_json(self) -> str: ...


def prepare(
    req: ChatCompletionRequest, ctx: AppContext, prefix: str, stream_tools: bool = False
) -> Generation:
    """The request's plan (server/plan.py), ready to run; every refusal is raised here.
    `stream_tools`: tool calls come as streamed pieces (a chat stream), else whole."""
    try:
        return Generation(ctx.engine, ctx.info, plan(req, ctx.info, ctx.config),
                          f"{prefix}-{uuid.uuid4().hex}", stream_tools)  # fmt: skip
    except EngineError as exc:  # sampling values vLLM refuses
        raise exc.as_api_error() from exc


async def respond(
    request: Request,
    ctx: AppContext,
    body: Callable[[], Awaitable[JsonBody]] | None,
    events: Callable[[], AsyncIterator[str]] | None,
    error_events: ErrorEvents,
) -> Response:
    """The JSON `body()`, or (when `events` is given) a server-sent stream of `events()`."""
    timeout = ctx.config.limits.request_timeout_s
    slot = ctx.admission.slot()
    await slot.__aenter__()  # a 429/503 here, before any work; released when the work ends
    if events is not None:
        counted = _counted(events(), error_events)
        chunks = _until_disconnect_stream(request, counted, error_events, timeout)
        return StreamingResponse(_released(chunks, slot), media_type="text/event-stream")
    assert body is not None
    started = time.monotonic()
    try:
        reply = await asyncio.wait_for(_until_disconnect(request, body()), timeout)
    except TimeoutError as exc:  # wait_for cancelled the work, which aborts its engine requests
        metrics.REQUESTS.labels("error").inc()
        raise _timed_out(timeout) from exc
    except EngineError as exc:
        metrics.REQUESTS.labels("error").inc()
        raise exc.as_api_error() from exc
    finally:
        await slot.__aexit__(None, None, None)
    if reply is None:
        metrics.REQUESTS.labels("aborted").inc()
        return Response(status_code=499)
    metrics.REQUESTS.labels("ok").inc()
    metrics.LATENCY.observe(time.monotonic() - started)
    return Response(reply.dump_json(), media_type="application/json")


def _timed_out(timeout: float | None) -> RequestTimeout:
    return RequestTimeout(
        f"The request ran past this server's limit of {timeout:g} s and was stopped.",
        None, "request_timeout",
    )  # fmt: skip


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


async def _counted(events: AsyncIterator[str], error_events: ErrorEvents) -> AsyncIterator[str]:
    """`events`, counted in the request metrics; an engine error ends them with its event."""
    started = time.monotonic()
    try:
        async for event in events:
            yield event
    except EngineError as exc:
        metrics.REQUESTS.labels("error").inc()
        for event in error_events(exc.as_api_error()):
            yield event
        return
    except (asyncio.CancelledError, GeneratorExit):
        # A client that leaves cancels us mid-await, or closes us while suspended at a yield.
        metrics.REQUESTS.labels("aborted").inc()
        raise
    metrics.REQUESTS.labels("ok").inc()
    metrics.LATENCY.observe(time.monotonic() - started)


async def _released(chunks: AsyncIterator[str], slot) -> AsyncIterator[str]:
    """`chunks`, then the admission slot back, however the stream ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await slot.__aexit__(None, None, None)


async def _until_disconnect_stream(
    request: Request,
    chunks: AsyncIterator[str],
    error_events: ErrorEvents,
    timeout: float | None = None,
) -> AsyncIterator[str]:
    """Pass `chunks` on until the client goes away, then close them (aborting the engine
    requests). Starlette no longer cancels a streaming response when the client leaves
    (ASGI 2.4 servers report it only through `receive`), so this watches for it. Past
    `timeout` seconds the stream ends with an error event."""
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
                for event in error_events(_timed_out(timeout)):
                    yield event
                return
            if watcher.done():
                return
            yield chunk
    finally:
        watcher.cancel()
        await chunks.aclose()
