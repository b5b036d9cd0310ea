"""Problems to calibrate on: the testbed's calibration split, a JSONL file with answers,
or a JSONL file of prompts alone.

A JSONL file holds one {"question": ..., "answer": ...} object per line; answers are
compared with the last `\\boxed{...}` of the model's reply by math-verify (tolerant
math equivalence), which is what GSM8K / MATH-500 style data need.

Prompts alone (`load_prompts`): one {"question": ...} or {"messages": [...]} per line, no
answers. Calibration then labels a forced exit by whether its answer agrees with the
model's own final answer after natural thinking on the same trace, with an answer format
(`EXTRACTORS`: boxed maths by math-verify, a multiple-choice letter, the exact last line,
a JSON field); a trace whose final answer cannot be read is skipped and counted.
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
    questions: list[str | list[dict]]  # a question, or chat messages
    check: Callable[[int, str], bool | None]  # (question index, reply text) -> correct?
    # Label-free data: a reply's answer (None: none readable) and whether two answers
    # agree; the reference is then the trace's own final answer, not `check`.
    extract: Callable[[str], str | None] | None = None
    agree: Callable[[str, str], bool] | None = None

    @property
    def labels(self) -> str:
        return "self-agreement" if self.extract is not None else "gold answers"


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


def _boxed_equal(a: str, b: str) -> bool:
    from math_verify import parse, verify

    pa, pb = parse(f"${a}$"), parse(f"${b}$")
    if pa and pb:
        return bool(verify(pa, pb))
    return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def _choice(text: str) -> str | None:
    """The last multiple-choice letter: \\boxed{C}, (C), "answer is C", or a lone C."""
    boxed = _last_boxed(text)
    if boxed is not None and re.fullmatch(r"\(?([A-J])\)?", boxed.strip()):
        return boxed.strip().strip("()")
    found = re.findall(r"(?:\(([A-J])\)|\banswer(?: is)?:?\s*\(?([A-J])\b|^\s*([A-J])\s*$)",
                       text, flags=re.MULTILINE | re.IGNORECASE)  # fmt: skip
    return next((g.upper() for g in found[-1] if g), None) if found else None


def _last_line(text: str) -> str | None:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else None


def _json_field(field: str) -> Callable[[str], str | None]:
    def extract(text: str) -> str | None:
        for start in [m.start() for m in re.finditer(r"\{", text)][::-1]:
            try:
                value = json.JSONDecoder().raw_decode(text[start:])[0]
            except ValueError:
                continue
            if isinstance(value, dict) and field in value:
                return json.dumps(value[field], sort_keys=True)
        return None

    return extract


def _same(a: str, b: str) -> bool:
    return a == b


# --answer-format -> (extractor, equivalence); "json:FIELD" for a JSON field
EXTRACTORS: dict[str, tuple[Callable[[str], str | None], Callable[[str, str], bool]]] = {
    "boxed": (_last_boxed, _boxed_equal),
    "choice": (_choice, _same),
    "exact": (_last_line, _same),
}


def answer_format(name: str) -> tuple[Callable[[str], str | None], Callable[[str, str], bool]]:
    if name.startswith("json:") and name[5:]:
        return _json_field(name[5:]), _same
    if name not in EXTRACTORS:
        raise ValueError(f"answer format {name!r} is not one of {[*EXTRACTORS, 'json:FIELD']}")
    return EXTRACTORS[name]


def load_prompts(path: str | Path, fmt: str = "boxed") -> Dataset:
    """Prompts without answers, labelled by self-agreement under the answer format `fmt`."""
    extract, agree = answer_format(fmt)
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    prompts: list[str | list[dict]] = []
    for n, row in enumerate(rows, 1):
        if "messages" in row:
            prompts.append(list(row["messages"]))
        elif "question" in row:
            prompts.append(str(row["question"]))
        else:
            raise ValueError(f'{path}:{n}: a line needs "question" or "messages"')
    return Dataset(f"{path} (prompts, {fmt})", prompts, lambda i, t: None, extract, agree)


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
