"""Forced exits: what would the model answer if thinking stopped right here?

The trace is cut at a cue word, the end-of-thinking token and an answer inducer are
appended, and a short greedy answer is decoded (engine/offline.py: `greedy_ids`) and
checked. `forced_exits` cuts just before the cue (the testbed's overthinking and
self-correction measures); LYNX labels (calibration/traces.py) keep the cue, because the
server exits after the cue token was emitted, so a label says exactly what that exit
would answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ForcedExit:
    trace: int  # index of the trace it came from
    position: int  # output tokens kept: the cue was the token at this index
    prompt_ids: tuple[int, ...]  # prompt + kept output + end of thinking + inducer


def cue_positions(output_ids: Sequence[int], cue_ids: Iterable[int], end_id: int) -> list[int]:
    """Indices of cue tokens inside the thinking block of one output."""
    cues = set(cue_ids)
    out = []
    for i, tok in enumerate(output_ids):
        if tok == end_id:
            break
        if tok in cues:
            out.append(i)
    return out


def answer_ids(close_ids: Sequence[int], answer: Sequence[int]) -> list[int]:
    """A forced exit's answer as it is checked: the inducer (`close_ids` after the end of
    thinking) opens it, so `\\boxed` and the model's `{d}` decode as one."""
    return [*close_ids[1:], *answer]


def forced_exits(
    prompts: Sequence[Sequence[int]],
    outputs: Sequence[Sequence[int]],
    cue_ids: Iterable[int],
    close_ids: Sequence[int],
) -> list[ForcedExit]:
    """One forced exit per cue event of every trace. close_ids: end of thinking + inducer."""
    cue_ids = set(cue_ids)
    exits = []
    for t, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
        for pos in cue_positions(output, cue_ids, close_ids[0]):
            exits.append(ForcedExit(t, pos, (*prompt, *output[:pos], *close_ids)))
    return exits


def label_exits(
    exits: Sequence[ForcedExit],
    answers: Sequence[str],
    check: Callable[[int, str], bool | None],
) -> list[bool | None]:
    """check(trace index, answer text) -> True/False, or None when the answer is malformed."""
    return [check(e.trace, a) for e, a in zip(exits, answers, strict=True)]
