"""Facts about the served model that the HTTP side needs, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from thinkctl.control.phase import Delimiters
from thinkctl.probes.cues import cue_token_ids_of
from thinkctl.probes.model_folder import ThinkTokens

if TYPE_CHECKING:
    from thinkctl.engine.tools import AutoToolParser


@dataclass(frozen=True)
class ModelInfo:
    name: str
    think: ThinkTokens  # the model folder's conventions, resolved on its tokenizer
    max_model_len: int
    tool_parser: AutoToolParser | None = None  # vLLM's --tool-call-parser, on its tokenizer
    # What vLLM fills in for a request that leaves a sampling field unset (the folder's
    # generation_config.json, engine/client.py); a preset's values go over them.
    sampling_defaults: Mapping[str, Any] = field(default_factory=dict)
    max_logprobs: int = 20  # vLLM's --max-logprobs (-1: the whole vocabulary)

    @property
    def tokenizer(self) -> Any:
        return self.think.tokenizer

    @property
    def delims(self) -> Delimiters | None:
        """None: the model has no single-token think delimiters (served as non-thinking)."""
        return Delimiters(self.think.start, self.think.end) if self.think.thinks else None

    @cached_property
    def cue_ids(self) -> frozenset[int]:
        """The tokens of the default cue words ("wait", ...), where DEER tries the answer;
        resolved on first use (a pass over the vocabulary)."""
        return frozenset(cue_token_ids_of(self.tokenizer))
