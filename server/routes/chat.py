"""POST /v1/chat/completions, streaming (SSE) and not."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from thinkctl.errors import APIError
from thinkctl.server.deps import get_ctx, require_api_key
from thinkctl.server.errors import error_body
from thinkctl.server.generation import ChoiceDelta, Generation
from thinkctl.server.protocol import ChatCompletionRequest
from thinkctl.server.replies import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    DeltaMessage,
    usage,
)
from thinkctl.server.routes.run import prepare, respond

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.post(
    "/v1/chat/completions",
    responses={200: {"model": ChatCompletion, "description": "A chat completion; with "
                     "`stream`, server-sent events of ChatCompletionChunk, then [DONE]."}},
)  # fmt: skip
async def chat_completions(req: ChatCompletionRequest, request: Request) -> Response:
    ctx = get_ctx(request)
    gen = prepare(req, ctx, "chatcmpl", stream_tools=req.stream)
    head = {
        "id": f"chatcmpl-{req.request_id}" if req.request_id else gen.request_id,
        "created": int(time.time()),
        "model": ctx.info.name,
    }
    field = ctx.config.reasoning_field
    if req.stream:
        return await respond(request, ctx, None, lambda: _sse(gen, req, head, field), _error)
    return await respond(request, ctx, lambda: _collect(gen, req, head, field), None, _error)


def _error(err: APIError) -> list[str]:
    """An error in a chat stream: its error body as a chunk, then [DONE] (as vLLM ends it)."""
    return [_sse_data(error_body(err.message, err.type, err.param, err.code)), "data: [DONE]\n\n"]


async def _collect(
    gen: Generation, req: ChatCompletionRequest, head: dict, field: str
) -> ChatCompletion:
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
        ids = {"token_ids": c.token_ids} if req.return_token_ids else {}
        choices.append(Choice(
            index=c.index,
            message=AssistantMessage(**message),
            finish_reason=c.finish_reason,
            stop_reason=c.stop_reason,
            logprobs={"content": parts[c.index]["lp"]} if req.logprobs else None,
            thinkctl=c.trace,
            **ids,
        ))  # fmt: skip
    ids = {"prompt_token_ids": gen.prompt_ids} if req.return_token_ids else {}
    u = usage(len(gen.prompt_ids), gen.completion_tokens, gen.reasoning_tokens)
    return ChatCompletion(**head, object="chat.completion", choices=choices, usage=u, **ids)


def _sse_data(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _sse(
    gen: Generation, req: ChatCompletionRequest, head: dict, field: str
) -> AsyncIterator[str]:
    options = req.stream_options
    include_usage = bool(options and options.include_usage)
    running_usage = include_usage and bool(options and options.continuous_usage_stats)

    def chunk(choice: ChunkChoice, **extra: Any) -> str:
        if include_usage:  # OpenAI: null on every chunk but the last; vLLM's option: so far
            extra["usage"] = (
                usage(len(gen.prompt_ids), gen.completion_tokens, gen.reasoning_tokens)
                if running_usage else None
            )  # fmt: skip
        obj = ChatCompletionChunk(**head, object="chat.completion.chunk", choices=[choice],
                                  **extra)  # fmt: skip
        return f"data: {obj.dump_json()}\n\n"

    def roles() -> Iterator[str]:
        # The role comes first, once per choice, as OpenAI sends it; like vLLM, only once
        # the engine has produced something, so a client's time to first chunk includes
        # queueing and prefill (what TTFT means when benchmarks compare us with vLLM).
        ids = {"prompt_token_ids": gen.prompt_ids} if req.return_token_ids else {}
        for c in gen.choices:
            role = DeltaMessage(role="assistant", content="")
            yield chunk(ChunkChoice(index=c.index, delta=role, logprobs=None,
                                    finish_reason=None), **ids)  # fmt: skip

    sent_role = False
    async for d in gen.stream():  # an EngineError ends the stream with _error (run.py)
        if not sent_role:
            sent_role = True
            for r in roles():
                yield r
        if (d.reasoning or d.content or d.tool_calls or d.finish_reason is not None
                or req.return_token_ids or d.logprobs):  # fmt: skip
            yield chunk(from_delta(d, gen, req, field))  # a delimiter alone sends nothing
    if not sent_role:
        for r in roles():
            yield r
    if include_usage:
        u = usage(len(gen.prompt_ids), gen.completion_tokens, gen.reasoning_tokens)
        last = ChatCompletionChunk(**head, object="chat.completion.chunk", choices=[], usage=u)
        yield f"data: {last.dump_json()}\n\n"
    yield "data: [DONE]\n\n"


def from_delta(
    d: ChoiceDelta, gen: Generation, req: ChatCompletionRequest, field: str
) -> ChunkChoice:
    delta: dict[str, Any] = {}
    if d.reasoning and req.include_reasoning:
        delta[field] = d.reasoning
    if d.content:
        delta["content"] = d.content
    if d.tool_calls:
        # Streamed pieces carry their index; calls parsed whole are numbered here.
        delta["tool_calls"] = [call if "index" in call else {"index": i, **call}
                               for i, call in enumerate(d.tool_calls)]  # fmt: skip
    extra: dict[str, Any] = {"token_ids": d.token_ids} if req.return_token_ids else {}
    if d.finish_reason is not None:
        extra |= {"stop_reason": d.stop_reason, "thinkctl": gen.choices[d.index].trace}
    return ChunkChoice(
        index=d.index,
        delta=DeltaMessage(**delta),
        logprobs={"content": d.logprobs} if d.logprobs is not None else None,
        finish_reason=d.finish_reason,
        **extra,
    )
