"""Tool calls read from a choice's answer, as `vllm serve` returns them.

- tool_choice "auto": vLLM's tool-call parser (engine/tools.py) finds the calls in the
  answer text; text before them stays content.
- "required": the grammar made the answer a JSON list of {"name", "parameters"}.
- a named function: the grammar made the answer that function's arguments.

Only the answer is parsed: a call the model drafts while thinking is not a call.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from thinkctl.server.plan import Reply


def _call_id() -> str:
    return f"chatcmpl-tool-{uuid.uuid4().hex}"  # vLLM's form


def tool_calls(reply: Reply, answer: str, parser: Any) -> tuple[str | None, list[dict]]:
    """(content, OpenAI tool calls) of one choice's full answer."""
    content: str | None
    if reply.tools == "auto":
        content, calls = parser.parse(answer, reply.tool_defs, reply.parallel_tool_calls)
    elif reply.tools == "named":
        content, calls = "", [{"name": reply.tool_name, "arguments": answer}]
    elif reply.tools == "required":
        try:
            items = json.loads(answer)
            calls = [{"name": c["name"], "arguments": json.dumps(c["parameters"],
                                                                ensure_ascii=False)}
                     for c in items]  # fmt: skip
            content = ""
        except (ValueError, TypeError, KeyError):  # cut off by max_tokens: not a call
            content, calls = answer, []
    else:
        return answer, []
    if reply.parallel_tool_calls is False:
        calls = calls[:1]
    return content, [{"id": _call_id(), "type": "function", "function": c} for c in calls]


def finish_reason(reply: Reply, engine_reason: str, calls: list[dict]) -> str:
    """OpenAI's: "tool_calls" when "auto" called a tool or "required" finished its calls;
    a named function's call ends with the engine's reason."""
    if calls and (reply.tools == "auto" or (reply.tools == "required" and engine_reason == "stop")):
        return "tool_calls"
    return engine_reason
