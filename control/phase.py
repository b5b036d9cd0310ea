"""Where a token stream stands relative to the thinking block.

Used on both sides: inside the engine (controllers need the phase and the thinking
length) and in the HTTP layer (to split `reasoning` from `content` and count
`reasoning_tokens`). Both feed it token ids, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    BEFORE = "before"  # thinking not opened (yet)
    THINKING = "thinking"
    ANSWER = "answer"  # thinking closed


class Part(StrEnum):
    """Where one output token goes in the response."""

    REASONING = "reasoning"
    CONTENT = "content"
    DELIMITER = "delimiter"  # neither: the think delimiters are markup


@dataclass(frozen=True)
class Delimiters:
    """Single-token think delimiters of a model."""

    start: int
    end: int


def initial_phase(prompt_ids: Iterable[int], delims: Delimiters) -> Phase:
    """Phase at the first output token: THINKING if the prompt left a block open.

    R1-Distill-style templates end the generation prompt with `<think>`, so the
    model starts inside the thinking block without emitting the start token itself.
    """
    phase = Phase.BEFORE
    for tok in prompt_ids:
        if tok == delims.start:
            phase = Phase.THINKING
        elif tok == delims.end:
            phase = Phase.BEFORE  # a closed block of an earlier turn
    return phase


class PhaseTracker:
    """Consumes output token ids one by one; counts thinking tokens.

    The delimiters themselves are not thinking tokens. Only the first block counts:
    once thinking is closed, a later `<think>` is ordinary answer text.
    """

    def __init__(self, delims: Delimiters, phase: Phase = Phase.BEFORE) -> None:
        self.delims = delims
        self.phase = phase
        self.thinking_tokens = 0
        self.consumed = 0
        self.closed_at: int | None = None  # output index of the end delimiter

    def feed(self, token: int) -> Part:
        """Consume one token; return where it belongs in the response."""
        at = self.consumed
        self.consumed += 1
        if self.phase is Phase.BEFORE and token == self.delims.start:
            self.phase = Phase.THINKING
            return Part.DELIMITER
        if self.phase is Phase.THINKING:
            if token == self.delims.end:
                self.phase = Phase.ANSWER
                self.closed_at = at
                return Part.DELIMITER
            self.thinking_tokens += 1
            return Part.REASONING
        return Part.CONTENT

    def feed_all(self, tokens: Iterable[int]) -> None:
        for tok in tokens:
            self.feed(tok)
