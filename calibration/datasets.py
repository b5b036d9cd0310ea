"""Problems to calibrate on: the testbed's calibration split, or a JSONL file.

A JSONL file holds one {"question": ..., "answer": ...} object per line; answers are
compared with the last `\\boxed{...}` of the model's reply by math-verify (tolerant
math equivalence), which is what GSM8K / MATH-500 style data need.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dataset:
    name: str
    questions: list[str]
    check: Callable[[int, str], bool | None]  # (question index, reply text) -> correct?


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return text[i:j].strip()
            depth -= 1
    return None


def math_equal(reply: str, answer: str) -> bool | None:
    """None when the reply has no complete \\boxed{...}."""
    from math_verify import parse, verify

    got = _last_boxed(reply)
    if got is None:
        return None
    gold = parse(f"${answer}$")
    pred = parse(f"${got}$")
    if gold and pred:
        return bool(verify(gold, pred))
    return re.sub(r"\s+", "", got) == re.sub(r"\s+", "", str(answer))


def load(data: str, split: str = "calibration") -> Dataset:
    """`testbed` (its `split`: calibration or test), `testbed:N` (its calibration split
    extended to N problems, testbed/tasks.py) or a JSONL file of question/answer."""
    if data == "testbed" or data.startswith("testbed:"):
        from thinkctl.testbed import tasks

        size = data.partition(":")[2]
        problems = tasks.calibration_pool(int(size)) if size else tasks.held_out(split)

        def check(i: int, text: str) -> bool | None:
            got = tasks.extract_answer(text)
            return None if got is None else got == problems[i].answer

        return Dataset("testbed", [p.prompt() for p in problems], check)
    rows = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    answers = [str(r["answer"]) for r in rows]
    return Dataset(data, [r["question"] for r in rows], lambda i, t: math_equal(t, answers[i]))
