"""Facts about the served model that the HTTP side needs, read once from the tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.config import ServerConfig
from server.controllers.phase import Delimiters


def single_token_id(tokenizer: Any, text: str) -> int | None:
    """The id of `text` if the tokenizer keeps it as exactly one token, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    tokenizer: Any
    max_model_len: int
    delims: Delimiters | None  # None: the model has no single-token think delimiters
    eos_ids: frozenset[int]

    @classmethod
    def load(cls, config: ServerConfig, tokenizer: Any, max_model_len: int) -> ModelInfo:
        start = single_token_id(tokenizer, config.think_start)
        end = single_token_id(tokenizer, config.think_end)
        delims = Delimiters(start, end) if start is not None and end is not None else None
        eos = tokenizer.eos_token_id
        return cls(
            name=config.model_name,
            tokenizer=tokenizer,
            max_model_len=max_model_len,
            delims=delims,
            eos_ids=frozenset([eos] if eos is not None else []),
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)
