"""The catalogue's data model, validated when models.json is read.

An entry says how its model is asked for length or mode (`mechanism`), as a table from
`reasoning_effort` levels to actions, so the server needs no per-model code:

    mechanism             what an effort level's action may hold
    none                  nothing: effort is only the thinking budget (the stop controllers)
    first_token           mode_prefix: the reply's forced first token (Thinkless <short>/<think>)
    prefill_end_think     mode_prefix = the end-of-thinking token (AdaptThink's no-think)
    prompt_suffix         nothing per level: `length_prompt` puts the budget N in the prompt (L1)
    chat_template_kwarg   chat_template_kwargs (Qwen3's enable_thinking)
    system_prompt         system_prompt (Llama-Nemotron's "detailed thinking on/off")

Every action may also carry sampling overrides (Qwen3's non-thinking mode samples
differently). Facts that could not be checked against a model card, paper or the
authors' code are listed in the entry's `unverified`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkctl.probes.model_folder import THINK_END, THINK_START

CATALOG_FILE = Path(__file__).with_name("models.json")

Mechanism = Literal[
    "none", "first_token", "prefill_end_think", "prompt_suffix", "chat_template_kwarg",
    "system_prompt",
]  # fmt: skip
Level = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
# What each mechanism's actions may set (sampling is always allowed).
ACTION_FIELDS: dict[str, set[str]] = {
    "none": set(),
    "first_token": {"mode_prefix"},
    "prefill_end_think": {"mode_prefix"},
    "prompt_suffix": set(),
    "chat_template_kwarg": {"chat_template_kwargs"},
    "system_prompt": {"system_prompt"},
}


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sampling(_Data):
    """Recommended sampling; None leaves the server's default (or the client's value)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    max_tokens: int | None = Field(default=None, ge=1)

    def over(self, base: Sampling) -> Sampling:
        """These values where set, else `base`'s."""
        return Sampling(**{**base.model_dump(), **self.model_dump(exclude_none=True)})


class EffortAction(_Data):
    """What one reasoning_effort level does on top of the thinking budget."""

    mode_prefix: str | None = Field(default=None, min_length=1)
    chat_template_kwargs: dict[str, bool | int | float | str] | None = None
    system_prompt: str | None = Field(default=None, min_length=1)
    sampling: Sampling | None = None

    def fields_set(self) -> set[str]:
        return {k for k, v in self.model_dump(exclude={"sampling"}).items() if v is not None}


class LengthPrompt(_Data):
    """L1-style length control: the thinking budget N, written into the prompt."""

    template: str  # holds "{n}", e.g. "Think for {n} tokens."
    min_tokens: int = Field(ge=1)  # the range N was trained on; N is clamped into it
    max_tokens: int = Field(ge=1)
    default_tokens: int = Field(ge=1)  # N when the request names no effort and no budget
    separator: str = " "  # between the user's text (and instruction) and this sentence

    @model_validator(mode="after")
    def _check(self) -> LengthPrompt:
        if "{n}" not in self.template:
            raise ValueError("length_prompt.template needs a {n} placeholder")
        if not self.min_tokens <= self.default_tokens <= self.max_tokens:
            raise ValueError("length_prompt needs min_tokens <= default_tokens <= max_tokens")
        return self

    def render(self, n: int) -> str:
        n = min(max(n, self.min_tokens), self.max_tokens)
        return self.template.replace("{n}", str(n))


class Instruction(_Data):
    """The prompt text the authors evaluate with (e.g. R1-Distill's boxed-answer line)."""

    text: str = Field(min_length=1)
    placement: Literal["prefix", "suffix"] = "suffix"
    separator: str = " "


class ChatFormat(_Data):
    """A tokenizer's conventions, written down so presets can be tested without the hub.

    `{content}` marks a message's text. `special_tokens` maps each single-token string to
    its id (None: a single token whose id was not checked)."""

    source: str
    bos: str = ""
    eos: str
    system: str
    user: str
    assistant: str
    generation_prompt: str
    # What the template renders instead when the request turns thinking off (Qwen3).
    no_thinking_generation_prompt: str | None = None
    special_tokens: dict[str, int | None]


class Licence(_Data):
    name: str
    url: str | None = None
    verified: bool
    note: str = ""


class Result(_Data):
    """A number the model's authors report (not measured here)."""

    benchmark: str
    accuracy: float | None = None  # percent
    tokens: float | None = None  # mean response or thinking length, as the source counts
    baseline: str | None = None
    baseline_accuracy: float | None = None
    baseline_tokens: float | None = None
    note: str = ""
    source: str


class CatalogEntry(_Data):
    id: str  # hub id, or an embedded model's name
    family: str
    summary: str
    embedded: str | None = None  # served by name from models/embedded.py
    base_model: str | None
    licence: Licence
    tokenizer: str  # key into Catalog.tokenizers
    think: tuple[str, str] | None = (THINK_START, THINK_END)
    mechanism: Mechanism
    effort: dict[Level, EffortAction] = {}
    default_action: EffortAction | None = None  # when the request names no effort
    length_prompt: LengthPrompt | None = None
    instruction: Instruction | None = None
    sampling: Sampling = Sampling()
    answer_inducer: str | None = None  # None: the server's default
    results: list[Result] = []
    sources: list[str] = Field(min_length=1)
    unverified: list[str] = []

    @model_validator(mode="after")
    def _mechanism_fits(self) -> CatalogEntry:
        allowed = ACTION_FIELDS[self.mechanism]
        actions = [*self.effort.values(), *([self.default_action] if self.default_action else [])]
        for action in actions:
            extra = action.fields_set() - allowed
            if extra:
                raise ValueError(
                    f"{self.id}: mechanism {self.mechanism!r} does not use {sorted(extra)}"
                )
            if self.mechanism == "prefill_end_think" and self.think:
                if action.mode_prefix != self.think[1]:
                    raise ValueError(f"{self.id}: prefill_end_think must prefill {self.think[1]}")
        if (self.mechanism == "prompt_suffix") != (self.length_prompt is not None):
            raise ValueError(f"{self.id}: length_prompt goes with mechanism 'prompt_suffix' only")
        if self.mechanism != "none" and not actions and self.length_prompt is None:
            raise ValueError(f"{self.id}: mechanism {self.mechanism!r} needs effort actions")
        return self

    def action(self, level: str | None) -> EffortAction | None:
        """The action for a reasoning_effort level (None: the request named none)."""
        return self.default_action if level is None else self.effort.get(level)  # type: ignore[arg-type]


class Catalog(_Data):
    version: Literal[1]
    tokenizers: dict[str, ChatFormat]
    models: list[CatalogEntry]

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        ids = [m.id for m in self.models]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate catalogue ids: {sorted(dupes)}")
        for m in self.models:
            fmt = self.tokenizers.get(m.tokenizer)
            if fmt is None:
                raise ValueError(f"{m.id}: unknown tokenizer conventions {m.tokenizer!r}")
            needed = {*(m.think or ()), *(a.mode_prefix for a in m.effort.values())} - {None}
            missing = needed - set(fmt.special_tokens)
            if missing:
                raise ValueError(f"{m.id}: {sorted(missing)} not among {m.tokenizer}'s tokens")
        return self

    def find(self, model_id: str) -> CatalogEntry | None:
        return next((m for m in self.models if m.id == model_id), None)

    def for_embedded(self, name: str) -> CatalogEntry | None:
        return next((m for m in self.models if m.embedded == name), None)

    def chat_format(self, entry: CatalogEntry) -> ChatFormat:
        return self.tokenizers[entry.tokenizer]


def _expand(models: list[dict]) -> list[dict]:
    """Resolve `"same_as": ID` (the entry's fields, overridden by its own) in file order."""
    done: dict[str, dict] = {}
    out = []
    for raw in models:
        raw = dict(raw)
        base = raw.pop("same_as", None)
        if base is not None:
            if base not in done:
                raise ValueError(f"{raw.get('id')}: same_as {base!r} must name an earlier entry")
            raw = {**done[base], **raw}
        done.setdefault(raw["id"], raw)
        out.append(raw)
    return out


def parse(data: dict) -> Catalog:
    return Catalog(**{**data, "models": _expand(data["models"])})


@lru_cache(maxsize=1)
def load() -> Catalog:
    """The shipped catalogue (models/models.json), validated."""
    return parse(json.loads(CATALOG_FILE.read_text(encoding="utf-8")))
