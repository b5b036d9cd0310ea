"""POST /v1/responses: OpenAI's Responses API, streaming and not, on the chat pipeline.

The request becomes a chat request (server/responses_protocol.py), which is planned and
run as chat completions are; the reply is the Responses API's: a reasoning item (the
thinking, as `reasoning_text` content), a message item, function_call items, usage with
reasoning tokens, and the control trace as `thinkctl`. A stream sends the events the
`openai` SDK's `responses.stream` folds into that same response, ending with
`response.completed` (status "incomplete" when max_output_tokens ran out, as vLLM sends it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from thinkctl.errors import APIError, InvalidRequest
from thinkctl.server.deps import AppContext, get_ctx, require_api_key
from thinkctl.server.errors import param_path
from thinkctl.server.generation import Generation
from thinkctl.server.protocol import ChatCompletionRequest
from thinkctl.server.responses_protocol import ResponsesRequest, chat_param
from thinkctl.server.routes.run import prepare, respond

router = APIRouter(dependencies=[Depends(require_api_key)])


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@router.post("/v1/responses")
async def create_response(req: ResponsesRequest, request: Request) -> Response:
    ctx = get_ctx(request)
    chat = _chat_request(req)
    try:
        gen = prepare(chat, ctx, "resp")
    except APIError as err:  # named as this API names the field
        err.param = chat_param(err.param)
        raise
    reply = _Reply(req, chat, gen, ctx, int(time.time()))
    if req.stream:
        return await respond(request, ctx, None, reply.events, reply.error_events)
    return await respond(request, ctx, reply.collect, None, reply.error_events)


def _chat_request(req: ResponsesRequest) -> ChatCompletionRequest:
    try:
        return req.to_chat()
    except ValidationError as exc:
        first = exc.errors()[0]
        param = chat_param(param_path(first["loc"]))
        raise InvalidRequest(f"{param}: {first['msg']}", param, "invalid_value") from exc


@dataclass
class _Item:
    """One output item as it is built: its id, kind and text (or arguments)."""

    id: str
    kind: str  # "reasoning", "message", "function_call"
    text: str = ""
    call: dict[str, Any] = field(default_factory=dict)  # a function call's id, name, arguments

    def body(self, status: str = "completed") -> dict[str, Any]:
        if self.kind == "reasoning":
            return {"id": self.id, "type": "reasoning", "summary": [], "status": status,
                    "content": [{"type": "reasoning_text", "text": self.text}]}  # fmt: skip
        if self.kind == "message":
            return {"id": self.id, "type": "message", "role": "assistant", "status": status,
                    "content": [_output_text(self.text)]}  # fmt: skip
        fn = self.call["function"]
        return {"id": self.id, "type": "function_call", "call_id": self.call["id"],
                "name": fn["name"], "arguments": fn["arguments"], "status": status}  # fmt: skip

    def opened(self) -> dict[str, Any]:
        """The item as `response.output_item.added` announces it: nothing in it yet."""
        item = self.body("in_progress")
        if self.kind == "function_call":
            item["arguments"] = ""
        else:
            item["content"] = []
        return item


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _Reply:
    """One response: its items as the generation fills them, the body, the stream."""

    def __init__(self, req: ResponsesRequest, chat: ChatCompletionRequest, gen: Generation,
                 ctx: AppContext, created: int) -> None:  # fmt: skip
        self.req, self.chat, self.gen, self.ctx, self.created = req, chat, gen, ctx, created
        self.id = _id("resp")
        self.items: list[_Item] = []
        self.seq = 0

    # --- the body --------------------------------------------------------------------

    def response(self, status: str) -> dict[str, Any]:
        """The response object; its output and usage once the generation has ended."""
        req, gen = self.req, self.gen
        choice = gen.choices[0]
        done = status != "in_progress"
        incomplete = done and choice.finish_reason == "length"
        fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if (
            req.text and req.text.format) else {"type": "text"}  # fmt: skip
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": ("incomplete" if incomplete else "completed") if done else status,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "error": None,
            "model": self.ctx.info.name,
            "instructions": req.instructions,
            "output": [item.body() for item in self.items] if done else [],
            "max_output_tokens": req.max_output_tokens,
            "temperature": gen.sampling["temperature"],
            "top_p": gen.sampling["top_p"],
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "tool_choice": _tool_choice(req),
            "tools": [t.model_dump(exclude_none=True) for t in req.tools or ()],
            "text": {"format": fmt},
            "reasoning": {
                "effort": req.reasoning.effort if req.reasoning else None,
                "summary": None,
            },  # fmt: skip
            "metadata": req.metadata or {},
            "store": False,
            "background": False,
            "previous_response_id": None,
            "truncation": "disabled",
            "user": req.user,
            "usage": self._usage() if done else None,
            "thinkctl": choice.trace.model_dump() if done and choice.trace else None,
        }
        return body

    def _usage(self) -> dict[str, Any]:
        gen = self.gen
        prompt, output = len(gen.prompt_ids), gen.completion_tokens
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": gen.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": gen.reasoning_tokens},
            "total_tokens": prompt + output,
        }

    async def collect(self) -> _Json:
        async for _ in self._fill():
            pass
        return _Json(self.response("completed"))

    # --- the stream ------------------------------------------------------------------

    def _event(self, type_: str, **fields: Any) -> str:
        event = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return f"event: {type_}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"

    def error_events(self, err: APIError) -> list[str]:
        return [self._event("error", code=err.code, message=err.message,
                            param=chat_param(err.param))]  # fmt: skip

    async def events(self) -> AsyncIterator[str]:
        yield self._event("response.created", response=self.response("in_progress"))
        yield self._event("response.in_progress", response=self.response("in_progress"))
        async for kind, item, piece in self._fill():
            index = len(self.items) - 1
            where = {"item_id": item.id, "output_index": index}
            if kind == "open":
                yield self._event("response.output_item.added", output_index=index,
                                  item=item.opened())  # fmt: skip
                if item.kind == "message":
                    yield self._event("response.content_part.added", **where, content_index=0,
                                      part=_output_text(""))  # fmt: skip
                elif item.kind == "reasoning":
                    yield self._event("response.content_part.added", **where, content_index=0,
                                      part={"type": "reasoning_text", "text": ""})  # fmt: skip
            elif kind == "delta":
                if item.kind == "message":
                    yield self._event("response.output_text.delta", **where, content_index=0,
                                      delta=piece, logprobs=[])  # fmt: skip
                elif item.kind == "reasoning":
                    yield self._event("response.reasoning_text.delta", **where,
                                      content_index=0, delta=piece)  # fmt: skip
                else:
                    yield self._event("response.function_call_arguments.delta", **where,
                                      delta=piece)  # fmt: skip
            else:  # "close"
                for event in self._closing(item, index):
                    yield event
        yield self._event("response.completed", response=self.response("completed"))

    def _closing(self, item: _Item, index: int) -> list[str]:
        where = {"item_id": item.id, "output_index": index}
        out = []
        if item.kind == "message":
            out.append(self._event("response.output_text.done", **where, content_index=0,
                                   text=item.text, logprobs=[]))  # fmt: skip
            out.append(self._event("response.content_part.done", **where, content_index=0,
                                   part=_output_text(item.text)))  # fmt: skip
        elif item.kind == "reasoning":
            out.append(self._event("response.reasoning_text.done", **where, content_index=0,
                                   text=item.text))  # fmt: skip
            out.append(self._event("response.content_part.done", **where, content_index=0,
                                   part={"type": "reasoning_text", "text": item.text}))  # fmt: skip
        else:
            out.append(self._event("response.function_call_arguments.done", **where,
                                   arguments=item.call["function"]["arguments"]))  # fmt: skip
        out.append(self._event("response.output_item.done", output_index=index,
                               item=item.body()))  # fmt: skip
        return out

    # --- the items, as the generation fills them -----------------------------------------

    async def _fill(self) -> AsyncIterator[tuple[str, _Item, str]]:
        """("open" | "delta" | "close", item, text piece): reasoning, then the answer, then
        the function calls (which the tool parser gives once the choice has ended)."""
        current: _Item | None = None
        async for d in self.gen.stream():
            for kind, piece in (("reasoning", d.reasoning), ("message", d.content)):
                if not piece:
                    continue
                if current is None or current.kind != kind:
                    if current is not None:
                        yield "close", current, ""
                    current = _Item(_id("rs" if kind == "reasoning" else "msg"), kind)
                    self.items.append(current)
                    yield "open", current, ""
                current.text += piece
                yield "delta", current, piece
            for call in d.tool_calls or ():
                if current is not None:
                    yield "close", current, ""
                current = _Item(_id("fc"), "function_call", call=call)
                self.items.append(current)
                yield "open", current, ""
                yield "delta", current, call["function"]["arguments"]
        if not any(i.kind in ("message", "function_call") for i in self.items):
            if current is not None:  # an empty answer is still a message
                yield "close", current, ""
            current = _Item(_id("msg"), "message")
            self.items.append(current)
            yield "open", current, ""
        if current is not None:
            yield "close", current, ""


def _tool_choice(req: ResponsesRequest) -> Any:
    choice = req.tool_choice
    if choice is None:
        return "auto" if req.tools else "none"
    return choice if isinstance(choice, str) else choice.model_dump()


class _Json:
    """A body `respond` can send (server/routes/run.py)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def dump_json(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)
