"""Request models of the OpenAI-compatible chat API, and thinkctl's extension (the
replies are in server/replies.py).

Field names follow OpenAI's Chat Completions and vLLM's extensions
(`thinking_token_budget`, `include_reasoning`, `return_token_ids`). thinkctl's own
controls live in one object, `thinkctl`, which the `openai` SDK sends with
`extra_body={"thinkctl": {...}}`; the control trace comes back as `choices[i].thinkctl`.
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

from thinkctl.control.spec import Delta, TopHSpec, TSSpec

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
INT64 = 2**63 - 1
# apply_chat_template's own parameters: a template variable may not replace them (a client
# must not swap in its own template, or tokenize differently).
RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length",
    "return_tensors", "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
})  # fmt: skip


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    # A key no message type defines is a 400, as at the top level; OpenAI's keys that an
    # SDK echoes back in an assistant turn are accepted while null (`_echoed_nulls`).
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers
    # Earlier thinking of an assistant turn, under either name clients use.
    reasoning: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None  # an assistant turn's refusal: kept out of the prompt
    annotations: list[Any] | None = None  # url citations of an assistant turn: not prompt text
    audio: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None  # OpenAI's deprecated form of tool_calls

    @field_validator("audio", "function_call")
    @classmethod
    def _echoed_nulls(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise ValueError(f"{info.field_name} in a message is not supported by thinkctl")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionDefinition(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchema(BaseModel):
    name: str = Field(default="response", max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs `json_schema`")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool | None = False
    # vLLM's: usage (so far) on every chunk, when include_usage is on too
    continuous_usage_stats: bool | None = False


class LynxOptions(BaseModel):
    """LYNX early exit at cue words (needs a server with a probe)."""

    model_config = ConfigDict(extra="forbid")

    delta: Delta | None = Field(
        default=None,
        description="Risk level: at most this share of cue events where exiting would be "
        "wrong exit (split conformal, per event). Default: the probe's.",
    )
    max_accuracy_loss: float | None = Field(
        default=None, gt=0, lt=1,
        description="Save what LYNX can while losing at most this much accuracy against "
        "natural thinking, with the probe's calibrated confidence 1 - alpha (Learn-then-Test "
        "on calibration questions); the largest calibrated level not above it is used. "
        "Instead of delta.",
    )  # fmt: skip
    min_thinking_tokens: int | None = Field(
        default=None, ge=0, le=1_000_000,
        description="No exit before thinking holds this many tokens (the cue included). "
        "Default: the effort's calibrated floor, else 0.",
    )  # fmt: skip


class DeerOptions(BaseModel):
    """DEER: at each cue word, try the answer; exit when it is confident (server/side_probe.py)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        gt=0, le=1, description="λ: exit when the trial answer's confidence reaches this."
    )
    confidence: Literal["mean", "min"] = Field(
        default="mean", description="The trial answer tokens' mean or minimum probability."
    )
    answer_tokens: int = Field(default=16, ge=1, le=256, description="A trial's longest answer.")


class DynasorOptions(BaseModel):
    """Dynasor-CoT: every k thinking tokens, try the answer; exit when m in a row agree."""

    model_config = ConfigDict(extra="forbid")

    every: int = Field(default=32, ge=1, le=1_000_000, description="k: tokens between trials.")
    agree: int = Field(default=3, ge=1, le=64, description="m: agreeing trial answers to exit.")
    answer_tokens: int = Field(default=16, ge=1, le=256, description="A trial's longest answer.")


class ThinkctlOptions(BaseModel):
    """thinkctl's per-request controls (request body field `thinkctl`)."""

    model_config = ConfigDict(extra="forbid")

    mode_prefix: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Text the reply is forced to start with, e.g. '<short>' for Thinkless "
        "or the end-of-thinking token to skip an open thinking block.",
    )  # fmt: skip
    effort: float | None = Field(
        default=None, ge=0, le=1,
        description="Fraction of the model's natural thinking length to spend (calibrated).",
    )  # fmt: skip
    effort_policy: Literal["query", "global"] | None = Field(
        default=None,
        description="What effort caps: 'query', each query's own budget from its predicted "
        "thinking lengths (the default where the model's calibration has a length "
        "predictor), or 'global', one budget for every query.",
    )  # fmt: skip
    # The engine's own option types: one definition, bounds in one place.
    ts: TSSpec | None = None
    top_h: TopHSpec | None = None
    lynx: LynxOptions | bool | None = Field(
        default=None,
        description="true (the probe's default delta), {delta}, or false to keep LYNX off "
        "even when effort would turn it on.",
    )
    deer: DeerOptions | None = None
    dynasor: DynasorOptions | None = None
    max_thinking_tokens: int | None = Field(
        default=None, ge=0, description="Close thinking after this many tokens (budget forcing)."
    )
    min_thinking_tokens: int | None = Field(
        default=None, ge=0, description='Think at least this long; "Wait" replaces early stops.'
    )
    answer_inducer: str | None = Field(
        default=None,
        max_length=200,
        description="Text forced after the end of thinking at the maximum.",
    )
    wait_string: str | None = Field(
        default=None, min_length=1, max_length=50, description="Text injected below the minimum."
    )
    answer_reserve: int | None = Field(
        default=None, ge=0, le=1_000_000,
        description="Tokens kept for the answer when max_tokens would run out inside "
        "thinking: thinking is closed early enough to leave them. 0 turns it off. "
        "Default: a quarter of max_tokens, at most --answer-reserve, else the model's "
        "calibrated reserve, else 256.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _min_le_max(self) -> ThinkctlOptions:
        lo, hi = self.min_thinking_tokens, self.max_thinking_tokens
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_thinking_tokens must not exceed max_thinking_tokens")
        return self


# vLLM's chat-completion fields that thinkctl does not serve (yet), with vLLM's defaults:
# sending one with another value is a 400 that names it, never a silent drop.
NOT_SERVED: dict[str, Any] = {
    "prompt_logprobs": None, "logprob_token_ids": None, "use_beam_search": False,
    "length_penalty": 1.0, "echo": False, "add_generation_prompt": True,
    "continue_final_message": False, "add_special_tokens": False, "chat_template": None,
    "documents": None, "allowed_token_ids": None, "bad_words": [],
    "truncate_prompt_tokens": None,
    "truncation_side": None, "priority": 0, "cache_salt": None,
    "kv_transfer_params": None, "ec_transfer_params": None, "vllm_xargs": None,
    "mm_processor_kwargs": None, "media_io_kwargs": None, "mm_payload": "tensors",
    "return_mm_kwargs": None, "return_prompt_text": None, "return_token_offsets": False,
    "repetition_detection": None, "routed_experts_prompt_start": 0, "session_id": None,
    "stream_interval": None, "watermarking": None, "return_weight_versions": False,
}  # fmt: skip
_NotServed = create_model("_NotServed", **{k: (Any, None) for k in NOT_SERVED})  # type: ignore[call-overload]


class ChatCompletionRequest(_NotServed):
    # A field neither OpenAI's, vLLM's nor thinkctl's is a 400 that names it, as OpenAI
    # answers one: a misspelt option must not be silently dropped.
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-INT64 - 1, le=INT64)
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    # vLLM's: the reply's id is "chatcmpl-<request_id>" (engine requests keep their own ids)
    request_id: str | None = Field(default=None, max_length=256)
    stream_options: StreamOptions | None = None
    user: str | None = None
    reasoning_effort: ReasoningEffort | None = None
    # vLLM's field: extra variables for the chat template (e.g. Qwen3's enable_thinking).
    chat_template_kwargs: dict[str, bool | int | float | str] | None = None
    # vLLM's field: maximum thinking tokens, -1 for unlimited.
    thinking_token_budget: int | None = Field(default=None, ge=-1)
    include_reasoning: bool = True
    return_token_ids: bool = False
    # vLLM's sampling extensions, passed to SamplingParams with vLLM's meaning.
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    min_tokens: int = Field(default=0, ge=0)
    stop_token_ids: list[int] | None = Field(default=None, max_length=64)
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    # Stop strings end the reply only when they occur in the answer (never in thinking).
    include_stop_str_in_output: bool = False
    # Logprobs of every completion token, thinking included; top_logprobs alternatives.
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0)  # at most --max-logprobs (plan)
    return_tokens_as_token_ids: bool | None = None
    # Tool calls, parsed from the answer (after thinking).
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = True
    # Grammars, enforced on the answer once thinking has closed.
    response_format: ResponseFormat | None = None
    structured_outputs: dict[str, Any] | None = None
    thinkctl: ThinkctlOptions | None = None

    @field_validator(*NOT_SERVED, check_fields=False)
    @classmethod
    def _not_served(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and value != NOT_SERVED[info.field_name]:
            raise ValueError(f"{info.field_name} is not supported by thinkctl")
        return value

    @field_validator("n", "stream", "logprobs", "return_token_ids", mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any, info: ValidationInfo) -> Any:
        """null where vLLM accepts it: the field's default."""
        return cls.model_fields[info.field_name].default if value is None else value

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, top: int | None, info: ValidationInfo) -> int | None:
        if top and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs to be true")
        return top

    @field_validator("tool_choice")
    @classmethod
    def _names_a_tool(cls, choice: Any, info: ValidationInfo) -> Any:
        tools = info.data.get("tools") or []
        if choice not in (None, "none") and not tools:
            raise ValueError("tool_choice needs tools")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in {
            t.function.name for t in tools
        }:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not in tools")
        return choice

    def tool_dicts(self) -> list[dict[str, Any]]:
        """The tools as chat templates and vLLM's tool code read them."""
        return [t.model_dump(exclude_none=True) for t in self.tools or ()]

    def tool_mode(self) -> str | NamedToolChoice:
        """tool_choice as OpenAI defaults it: "auto" when tools are given, else "none"."""
        if self.tool_choice is None:
            return "auto" if self.tools else "none"
        return self.tool_choice

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if bias is not None and not all(k.isdigit() for k in bias):
            raise ValueError("logit_bias keys must be token ids")
        return bias

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_variables_only(cls, kwargs: dict | None) -> dict | None:
        reserved = sorted(set(kwargs or {}) & RESERVED_TEMPLATE_KWARGS)
        if reserved:
            raise ValueError(f"chat_template_kwargs may not set {reserved}")
        return kwargs

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)
