"""R1-style thinking traces for chain-arithmetic problems, as training text.

    A : 3 + 4 = 7 , B : 7 * 2 = 9 , C : 9 - 5 = 4 . so answer 4 .        first pass (an error at B)
    Wait , check : A : 3 + 4 = 7 , B : 7 * 2 = 4 , C : 4 - 5 = 9 . so answer 9 .   corrects it
    Hmm , check : A : ... so answer 9 .                                  redundant re-check(s)
    </think> \\boxed{ 9 }

- First pass: each `*` step is, with probability `mul_error`, computed as `+` instead (a
  fixed, plausible slip rather than a random digit, so that sampling at T < 1 still makes
  it: a bimodal choice survives sharpening far better than nine small wrong options).
  Later steps carry the wrong value on, so the tentative answer is wrong.
- Re-checks open with a cue word and recompute the chain correctly; the first one after
  a wrong pass corrects the answer.
- After the last correction come 1..`max_redundant` redundant re-checks (overthinking),
  then the end of thinking and the answer in a fixed format.
- Cut traces (a share `cut_rate` of training examples): thinking stops at a random word,
  then `</think>` and the best guess so far: the last stated answer, else the last value
  computed, else a random digit. They teach the model to answer well-formed wherever a
  budget cuts it off; training puts no loss on their `</think>`, so the model never learns
  to stop early on its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from thinkctl.probes.model_folder import THINK_END
from thinkctl.testbed.tasks import LABELS, Problem, apply

CUES = ("Wait", "Hmm", "Alternatively")
END_THINK = THINK_END


@dataclass(frozen=True)
class TraceStyle:
    mul_error: float = 0.3
    max_redundant: int = 3
    cut_rate: float = 0.2


# One step of a pass: (label, value before, op, operand, value after).
Step = tuple[str, int, str, int, int]


def passes(problem: Problem, slips: set[int]) -> tuple[list[Step], int]:
    """One pass over the chain (`slips`: the `*` steps computed as `+`), and its answer."""
    steps: list[Step] = []
    v = problem.start
    for i, (label, (op, b)) in enumerate(zip(LABELS, problem.steps, strict=False)):
        new = apply("+" if i in slips else op, v, b)
        steps.append((label, v, op, b, new))
        v = new
    return steps, v


@dataclass(frozen=True)
class Plan:
    """What a trace says, before its surface form: the first pass, then one correct
    re-check per cue word."""

    first: tuple[list[Step], int]
    correct: tuple[list[Step], int]
    cues: list[str]


def plan(problem: Problem, rng: random.Random, style: TraceStyle = TraceStyle()) -> Plan:
    slips = {
        i for i, (op, _) in enumerate(problem.steps) if op == "*" and rng.random() < style.mul_error
    }
    first, correct = passes(problem, slips), passes(problem, set())
    rechecks = (first[1] != problem.answer) + rng.randint(1, style.max_redundant)
    return Plan(first, correct, [rng.choice(CUES) for _ in range(rechecks)])


def _pass_words(steps: list[Step], answer: int) -> list[str]:
    words: list[str] = []
    for label, v, op, b, new in steps:
        words += [label, ":", str(v), op, str(b), "=", str(new), ","]
    words[-1] = "."
    return [*words, "so", "answer", str(answer), "."]


def thinking_words(
    problem: Problem, rng: random.Random, style: TraceStyle = TraceStyle()
) -> list[str]:
    """The words inside the thinking block."""
    p = plan(problem, rng, style)
    words = _pass_words(*p.first)
    for cue in p.cues:
        words += [cue, ",", "check", ":", *_pass_words(*p.correct)]
    return words


def answer_words(answer: int) -> list[str]:
    return ["\\boxed{", str(answer), "}"]


def best_guess(thinking: list[str], rng: random.Random) -> int:
    """What a cut-off trace answers: the last stated answer, else the last value, else a guess."""
    for marker, offset in (("answer", 1), ("=", 1)):
        hits = [i for i, w in enumerate(thinking[:-offset]) if w == marker]
        if hits:
            return int(thinking[hits[-1] + offset])
    return rng.randrange(10)


@dataclass(frozen=True)
class Completion:
    """What the assistant writes after the `<think>` that the chat template opens."""

    thinking: list[str]
    answer: list[str]
    cut: bool  # thinking was cut off before its natural end

    def text(self) -> str:
        return " ".join([*self.thinking, END_THINK, *self.answer])


def completion(
    problem: Problem, rng: random.Random, style: TraceStyle = TraceStyle()
) -> Completion:
    thinking = thinking_words(problem, rng, style)
    if rng.random() < style.cut_rate:
        thinking = thinking[: rng.randrange(len(thinking))]
        return Completion(thinking, answer_words(best_guess(thinking, rng)), cut=True)
    return Completion(thinking, answer_words(problem.answer), cut=False)


def completion_text(problem: Problem, rng: random.Random, style: TraceStyle = TraceStyle()) -> str:
    """A natural (uncut) completion as text."""
    natural = TraceStyle(style.mul_error, style.max_redundant, cut_rate=0.0)
    return completion(problem, rng, natural).text()
