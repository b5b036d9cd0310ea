"""A tokenizer built from the conventions a catalogue entry writes down (no hub access).

Special tokens are single ids (the recorded id; a made-up one where the catalogue has
none); every other character is one id of its own, far from any real special id. The chat
template is the entry's ChatFormat: bos, then each message in its role's format, then the
generation prompt (the no-thinking one when enable_thinking=False and the format has it).
"""

from __future__ import annotations

import re
from typing import Any

from thinkctl.models.schema import ChatFormat

CHAR_BASE = 1_000_000  # char c -> CHAR_BASE + ord(c)
UNCHECKED_BASE = 5_000_000  # ids for special tokens whose real id is not recorded


class ConventionTokenizer:
    def __init__(self, fmt: ChatFormat) -> None:
        self.fmt = fmt
        self.special = {
            text: tid if tid is not None else UNCHECKED_BASE + i
            for i, (text, tid) in enumerate(fmt.special_tokens.items())
        }
        self.by_id = {tid: text for text, tid in self.special.items()}
        longest_first = sorted(self.special, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
        self.eos_token_id = self.special.get(fmt.eos)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece in self.special:
                ids.append(self.special[piece])
            else:
                ids += [CHAR_BASE + ord(c) for c in piece]
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.by_id.get(i) or chr(i - CHAR_BASE) for i in ids)

    def render(self, messages: list[dict[str, Any]], enable_thinking: bool | None = None) -> str:
        text = self.fmt.bos
        for m in messages:
            text += getattr(self.fmt, m["role"]).replace("{content}", m["content"])
        off = enable_thinking is False and self.fmt.no_thinking_generation_prompt is not None
        return text + (
            self.fmt.no_thinking_generation_prompt if off else self.fmt.generation_prompt
        )

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        tokenize: bool = True,
        return_dict: bool = False,
        **kwargs: Any,
    ):
        assert add_generation_prompt
        text = self.render(messages, kwargs.get("enable_thinking"))
        return self.encode(text) if tokenize else text
