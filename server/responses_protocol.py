"""The Responses API's request (`POST /v1/responses`), read into the chat request the rest
of the server plans and runs, so both APIs take the same controls.

Stateless: nothing is stored, so `store`, `previous_response_id`, `conversation` and
`background` are refused where they would ask for it. A field OpenAI defines that
thinkctl cannot honour is a 400 that names it, as is a field nobody defines.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from thinkctl.server.protocol import (
    INT64,
    ChatCompletionRequest,
    ReasoningEffort,
    ThinkctlOptions,
)


class _Item(BaseModel):
    # An item echoed back from an earlier response carries its id and status: accepted.
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    status: str | None = None


class TextContent(BaseModel):
    model_config = ConfigDict(extra="ignore")  # output_text echoes: annotations, logprobs
    type: Literal["input_text", "output_text", "text"]
    text: str


class MessageItem(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[TextContent]
    phase: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class ReasoningItem(_Item):
    """An earlier turn's reasoning: accepted, and left out of the prompt, as the chat
    templates of reasoning models leave out earlier thinking."""

    type: Literal["reasoning"]
    summary: list[Any] = []
    content: list[Any] | None = None
    encrypted_content: None = None


InputItem = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem,
    Field(discriminator="type"),
]


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str


class ReasoningOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effort: ReasoningEffort | None = None
    summary: Any = None
    generate_summary: Any = None

    @field_validator("summary", "generate_summary")
    @classmethod
    def _no_summary(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("reasoning summaries are not supported by thinkctl: the "
                             "reply carries the whole reasoning, as a reasoning item's "
                             "content")  # fmt: skip
        return value


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> TextFormat:
        if self.type == "json_schema" and (self.schema_ is None or self.name is None):
            raise ValueError("text.format of type json_schema needs `name` and `schema`")
        return self


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: TextFormat | None = None
    verbosity: Any = None

    @field_validator("verbosity")
    @classmethod
    def _no_verbosity(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("text.verbosity is not supported by thinkctl (use reasoning.effort)")
        return value


# OpenAI's fields that need state or services thinkctl does not have: accepted only at
# the value that asks for nothing.
NOT_SERVED: dict[str, tuple[Any, ...]] = {
    "store": (None, False), "previous_response_id": (None,), "conversation": (None,),
    "background": (None, False), "prompt": (None,), "include": (None, ()),
    "max_tool_calls": (None,), "service_tier": (None, "auto", "default"),
    "truncation": (None, "disabled"), "top_logprobs": (None, 0),
    "context_management": (None,), "stream_options": (None,),
}  # fmt: skip
_NotServed = create_model("_NotServedResponses", **{k: (Any, None) for k in NOT_SERVED})  # type: ignore[call-overload]


class ResponsesRequest(_NotServed):
    model_config = ConfigDict(extra="forbid")

    model: str
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    reasoning: ReasoningOptions | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    stream: bool | None = False
    metadata: dict[str, str] | None = None  # echoed back
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None  # vLLM's prefix cache needs no key
    # vLLM's sampling extensions and thinkctl's controls, with the chat API's meaning.
    seed: int | None = Field(default=None, ge=-INT64 - 1, le=INT64)
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    thinking_token_budget: int | None = None
    thinkctl: ThinkctlOptions | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _messages_may_omit_their_type(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{**v, "type": "message"} if isinstance(v, dict) and "type" not in v
                    else v for v in value]  # fmt: skip
        return value

    @field_validator(*NOT_SERVED, check_fields=False)
    @classmethod
    def _not_served(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = NOT_SERVED[info.field_name]
        if (tuple(value) if isinstance(value, list) else value) not in allowed:
            raise ValueError(f"{info.field_name} is not supported by thinkctl (stateless)")
        return value

    def messages(self) -> list[dict[str, Any]]:
        """The input as chat messages: instructions first, calls and their outputs as an
        assistant turn's tool_calls and tool turns."""
        out: list[dict[str, Any]] = []
        if self.instructions:
            out.append({"role": "system", "content": self.instructions})
        items = [MessageItem(role="user", content=self.input)] if isinstance(
            self.input, str) else self.input  # fmt: skip
        for item in items:
            if isinstance(item, MessageItem):
                out.append({"role": item.role, "content": item.text()})
            elif isinstance(item, FunctionCallItem):
                call = {"id": item.call_id, "type": "function",
                        "function": {"name": item.name, "arguments": item.arguments}}  # fmt: skip
                last = out[-1] if out else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(call)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif isinstance(item, FunctionCallOutputItem):
                out.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        return out

    def to_chat(self) -> ChatCompletionRequest:
        """The same request as chat completions take it (raises pydantic's ValidationError,
        whose fields `chat_param` names back in this API's terms)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(),
            "max_tokens": self.max_output_tokens,
            "reasoning_effort": self.reasoning.effort if self.reasoning else None,
            "stream": bool(self.stream),
            "user": self.user,
            "thinkctl": self.thinkctl,
        }
        for key in ("temperature", "top_p", "seed", "top_k", "min_p", "repetition_penalty",
                    "presence_penalty", "frequency_penalty", "thinking_token_budget",
                    "parallel_tool_calls"):  # fmt: skip
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if self.tools:
            body["tools"] = [{"type": "function", "function": t.model_dump(
                exclude={"type"}, exclude_none=True)} for t in self.tools]  # fmt: skip
        choice = self.tool_choice
        if isinstance(choice, NamedFunction):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        fmt = self.text.format if self.text else None
        if fmt is not None and fmt.type != "text":
            body["response_format"] = {"type": fmt.type}
            if fmt.type == "json_schema":
                body["response_format"]["json_schema"] = fmt.model_dump(
                    by_alias=True, exclude={"type"}, exclude_none=True)  # fmt: skip
        return ChatCompletionRequest.model_validate(body)


# The chat request's parameter names, as this API names them.
_CHAT_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
}


def chat_param(param: str | None) -> str | None:
    """A chat request's parameter name (an error's `param`) in the Responses API's terms."""
    if param is None:
        return None
    head, sep, rest = param.partition(".")
    base = head.split("[", 1)[0]
    if base in _CHAT_PARAMS:
        return _CHAT_PARAMS[base] if base == "messages" else _CHAT_PARAMS[base] + sep + rest
    return param
