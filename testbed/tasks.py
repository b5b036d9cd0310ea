"""Chain arithmetic mod 10: problems with a known answer, a checker, and seeded splits.

A problem is a start digit and k labelled steps, each an operation (+, -, *) with a digit,
applied left to right modulo 10. Difficulty d means k = d + 1 steps. In words:

    compute 3 ; A + 4 ; B * 2 ; C - 5        ->  answer 9   ((3+4)*2-5 mod 10)

The labels (A, B, ...) let the model look each step up in the prompt by an exact token
match instead of counting, which a small model learns far faster. Without writing the
intermediate values (thinking), the answer is out of reach for the model; with them each
step is one of 300 single-digit facts.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

OPS = ("+", "-", "*")
LABELS = tuple("ABCDEFGH")
DIFFICULTIES = tuple(range(1, len(LABELS)))  # 1..7 -> 2..8 steps
SPLITS = ("train", "calibration", "test")
# Held-out splits are drawn from their own seed streams; train excludes their problems.
_SPLIT_SEEDS = {"calibration": 1_000_003, "test": 2_000_003}
SPLIT_SIZES = {"calibration": 2000, "test": 1000}
_MORE_SEED = 3_000_003  # calibration problems beyond the split's 2000
# What the testbed's training drew (testbed/model/training.json: seed 0, 1500 steps of 32,
# from pools of 256), rounded up: problems it may have seen.
_TRAIN_SEED, _TRAIN_DRAWS = 0, 50_000


def apply(op: str, a: int, b: int) -> int:
    if op == "+":
        return (a + b) % 10
    if op == "-":
        return (a - b) % 10
    return (a * b) % 10


@dataclass(frozen=True)
class Problem:
    start: int
    steps: tuple[tuple[str, int], ...]  # (op, operand)

    @property
    def difficulty(self) -> int:
        return len(self.steps) - 1

    def values(self) -> list[int]:
        """The running value after each step (the correct chain)."""
        out, v = [], self.start
        for op, b in self.steps:
            v = apply(op, v, b)
            out.append(v)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def prompt(self) -> str:
        parts = [f"compute {self.start}"]
        parts += [f"{label} {op} {b}" for label, (op, b) in zip(LABELS, self.steps, strict=False)]
        return " ; ".join(parts)


def random_problem(rng: random.Random, difficulty: int) -> Problem:
    steps = tuple((rng.choice(OPS), rng.randrange(10)) for _ in range(difficulty + 1))
    return Problem(rng.randrange(10), steps)


def _draw(seed: int, n: int, exclude: set[Problem] = frozenset(), start: int = 0) -> list[Problem]:
    """n distinct problems, difficulties cycling evenly through DIFFICULTIES (from the
    `start`-th position of the cycle)."""
    rng, seen, out = random.Random(seed), set(exclude), []
    while len(out) < n:
        p = random_problem(rng, DIFFICULTIES[(start + len(out)) % len(DIFFICULTIES)])
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def held_out(split: str) -> list[Problem]:
    """The calibration or test split: fixed, disjoint from each other and from train."""
    if split == "calibration":
        return _draw(_SPLIT_SEEDS["calibration"], SPLIT_SIZES["calibration"])
    if split == "test":
        return _draw(_SPLIT_SEEDS["test"], SPLIT_SIZES["test"], set(held_out("calibration")))
    raise ValueError(f"no held-out split {split!r}; choose calibration or test")


def calibration_pool(n: int) -> list[Problem]:
    """The calibration split, extended to n problems when n > its size: the extra ones are
    drawn from their own seed stream, never a test problem, and never one the testbed's
    training may have drawn (so that, like the split, the model has not seen them)."""
    base = held_out("calibration")
    if n <= len(base):
        return base[:n]
    train = itertools.islice(train_stream(_TRAIN_SEED), _TRAIN_DRAWS)
    exclude = set(base) | set(held_out("test")) | set(train)
    return base + _draw(_MORE_SEED, n - len(base), exclude, start=len(base))


def prompt_ids(tok, problems: Iterable[Problem]) -> list[list[int]]:
    """Each problem as a one-turn chat, through `tok`'s chat template, ready to generate."""
    return [
        tok.apply_chat_template([{"role": "user", "content": p.prompt()}],
                                add_generation_prompt=True, tokenize=True, return_dict=False)
        for p in problems
    ]  # fmt: skip


def train_stream(seed: int) -> Iterator[Problem]:
    """An endless stream of training problems that never yields a held-out one."""
    excluded = set(held_out("calibration")) | set(held_out("test"))
    rng = random.Random(seed)
    while True:
        p = random_problem(rng, rng.choice(DIFFICULTIES))
        if p not in excluded:
            yield p


_BOXED = re.compile(r"\\boxed\{\s*(\d)\s*\}")


def extract_answer(text: str) -> int | None:
    """The digit in the first `\\boxed{ d }`, or None when the answer is malformed."""
    m = _BOXED.search(text)
    return int(m.group(1)) if m else None


def is_correct(problem: Problem, text: str) -> bool:
    return extract_answer(text) == problem.answer
