"""Tool calls with vLLM's own pieces: its tool-call parsers (`--tool-call-parser`) read
calls out of the answer for tool_choice "auto", and its JSON schema constrains the answer
for "required" and for a named function, as `vllm serve` does with
VLLM_ENFORCE_STRICT_TOOL_CALLING=0 (its default constrains forced calls to the model's own
call format with structural tags instead)."""

from __future__ import annotations

import json
from typing import Any

from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.tool_parsers import ToolParserManager
from vllm.tool_parsers.utils import get_json_schema_from_tools


def _request(tools: list[dict], tool_choice: Any, parallel: bool | None) -> ChatCompletionRequest:
    """vLLM's request holding the tool fields, the form its parsers read."""
    return ChatCompletionRequest(
        model="-", messages=[{"role": "user", "content": ""}], tools=tools,
        tool_choice=tool_choice, parallel_tool_calls=parallel,
    )  # fmt: skip


def forced_schema(tools: list[dict], tool_choice: Any, parallel: bool | None) -> dict | None:
    """The JSON schema vLLM enforces for tool_choice "required" or a named function."""
    req = _request(tools, tool_choice, parallel)
    schema = get_json_schema_from_tools(req.tool_choice, req.tools, req.parallel_tool_calls)
    return json.loads(schema) if isinstance(schema, str) else schema


def parser_names() -> list[str]:
    return sorted({*ToolParserManager.tool_parsers, *ToolParserManager.lazy_parsers})


class AutoToolParser:
    """One of vLLM's tool-call parsers, by its `--tool-call-parser` name."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        try:
            self._cls = ToolParserManager.get_tool_parser(name)
        except KeyError as exc:
            raise ValueError(
                f"unknown --tool-call-parser {name!r}; vLLM has {parser_names()}"
            ) from exc
        self._tokenizer = tokenizer

    def skip_special_tokens(self, tools: list[dict], default: bool) -> bool:
        """Whether to skip special tokens in the answer: some parsers need their markers."""
        req = _request(tools, "auto", None)
        req.skip_special_tokens = default
        return self._cls(self._tokenizer, req.tools).adjust_request(req).skip_special_tokens

    def parse(
        self, text: str, tools: list[dict], parallel: bool | None
    ) -> tuple[str | None, list[dict[str, str]]]:
        """(content, calls as {"name", "arguments"}) from the answer text; a fresh parser
        per answer, since parsers keep streaming state."""
        req = _request(tools, "auto", parallel)
        info = self._cls(self._tokenizer, req.tools).extract_tool_calls(text, req)
        if not info.tools_called:
            return text, []
        calls = [{"name": c.function.name, "arguments": c.function.arguments}
                 for c in info.tool_calls]  # fmt: skip
        return info.content, calls

    def stream(self, tools: list[dict], parallel: bool | None) -> ToolCallStream:
        """A parser for one choice's answer as it streams."""
        req = _request(tools, "auto", parallel)
        return ToolCallStream(self._cls(self._tokenizer, req.tools), req)


class ToolCallStream:
    """vLLM's streaming tool-call parser over one choice's answer, delta by delta, as
    `vllm serve` streams tool_choice "auto": content where it is text, calls as OpenAI's
    streamed pieces ({"index", then "id", "type", "function": {"name", "arguments"}}),
    and at the end the arguments the parser has read but not yet streamed."""

    def __init__(self, parser: Any, request: ChatCompletionRequest) -> None:
        self._parser, self._req = parser, request
        self._text, self._ids = "", []
        self.called = False

    def feed(self, text: str, ids: list[int], final: bool) -> tuple[str, list[dict]]:
        """(content, tool-call pieces) of the answer's next `text` (its token `ids`)."""
        prev_text, prev_ids = self._text, self._ids
        self._text, self._ids = prev_text + text, [*prev_ids, *ids]
        msg = None
        if text or ids:
            msg = self._parser.extract_tool_calls_streaming(
                prev_text, self._text, text, prev_ids, self._ids, ids, self._req
            )
        calls = [c.model_dump(exclude_none=True) for c in (msg.tool_calls if msg else None) or ()]
        if final and calls and "function" in calls[-1]:  # vLLM's finalize_generation
            fn = calls[-1]["function"]
            fn["arguments"] = fn.get("arguments", "") + self._parser.get_remaining_unstreamed_args()
        if self._req.parallel_tool_calls is False:  # vLLM's maybe_filter_parallel_tool_calls
            calls = [c for c in calls if c.get("index", 0) == 0]
        self.called = self.called or bool(calls)
        return (msg.content or "") if msg else "", calls
