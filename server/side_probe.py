"""Answer-consistency exits: try the answer in the middle of thinking, stop once it holds.

Two rules from the literature, on one mechanism:
- **DEER** (arXiv 2504.15895) tries the answer at each cue word ("wait", ...) and exits
  when the trial answer is confident: its tokens' mean (or minimum) probability reaches
  a threshold λ.
- **Dynasor-CoT** (arXiv 2412.20993) tries the answer every k thinking tokens and exits
  when the last m trial answers agree. A trial answer that hedges ("wait", "not sure",
  ...) or has no answer in it counts as no answer, so it breaks the run.

A trial is a short greedy side generation from the prompt, the thinking so far and the
close sequence (end of thinking + answer inducer), run by server/generation.py as its
own engine request: vLLM's prefix cache holds the main request's blocks, so a trial
pays for the tokens past the last full block and its own few tokens.

This module is the pure part: when to try (`SideProber.due`) and what a trial means
(`SideProber.judge`). It imports neither vLLM nor FastAPI.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from thinkctl.probes.cues import DEFAULT_CUES

# Words that make a trial answer a hedge (Dynasor discards such answers); matched as
# whole words, case-insensitive, in the trial's text.
HEDGES = (*DEFAULT_CUES, "not sure", "hold on", "but", "however", "unsure", "maybe")
_HEDGE = re.compile(r"\b(" + "|".join(re.escape(h) for h in HEDGES) + r")\b", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}?")


@dataclass(frozen=True)
class SideProbeSpec:
    """One request's side-probe rules, with token ids resolved (server/plan.py)."""

    close: tuple[int, ...]  # end of thinking + answer inducer, appended to the prefix
    inducer: str  # the inducer's text: a trial answer is read as inducer + trial text
    answer_tokens: int  # the longest trial answer, in tokens
    cue_ids: frozenset[int] = frozenset()  # DEER: try at these tokens inside thinking
    threshold: float | None = None  # DEER's λ
    confidence: Literal["mean", "min"] = "mean"
    every: int | None = None  # Dynasor: try every this many thinking tokens
    agree: int | None = None  # Dynasor: exit when this many trial answers in a row agree
    min_thinking: int = 0  # the request's minimum thinking: no trial before it

    @property
    def controllers(self) -> list[str]:
        names = []
        if self.threshold is not None:
            names.append("deer")
        if self.agree is not None:
            names.append("dynasor")
        return names


@dataclass(frozen=True)
class Trial:
    """One side generation: where it was taken and what came back."""

    at: int  # output tokens kept before the close sequence
    text: str
    logprobs: tuple[float, ...]  # of the trial's answer tokens (end-of-sequence excluded)
    tokens: int  # generated tokens, end-of-sequence included: the probe's cost
    cached_tokens: int  # prompt tokens vLLM served from its prefix cache


@dataclass(frozen=True)
class Verdict:
    exit_by: str | None  # "deer", "dynasor" or None (thinking goes on)
    answer: str | None  # the trial's answer (None: none, or a hedge)
    confidence: float
    agreeing: int  # trial answers in a row, this one included, that gave this answer


def answer_of(inducer: str, text: str) -> str | None:
    """The answer a trial gives: the last `\\boxed{...}` of inducer + text when there is
    one (the inducer usually opens it), else the text itself; None when empty or hedging."""
    full = inducer + text
    if _HEDGE.search(text):
        return None
    boxed = _BOXED.findall(full)
    answer = (boxed[-1] if boxed else text).strip()
    return " ".join(answer.split()) or None


def confidence_of(logprobs: Sequence[float], how: str) -> float:
    """The trial's confidence: mean or minimum probability of its tokens (0 with none)."""
    if not logprobs:
        return 0.0
    probs = [math.exp(lp) for lp in logprobs]
    return min(probs) if how == "min" else sum(probs) / len(probs)


@dataclass
class SideProber:
    """One choice's side-probe state. `due` says when to try; `judge` reads each trial."""

    spec: SideProbeSpec
    answers: list[str | None] = field(default_factory=list)
    _next_grid: int = 0

    def __post_init__(self) -> None:
        self._next_grid = self.spec.every or 0

    def due(self, new_ids: Sequence[int], thinking_tokens: int, thinking: bool) -> bool:
        """After the server has taken `new_ids` (the choice's latest output tokens): try the
        answer now? Only inside thinking: at a cue among them (DEER), or once thinking has
        grown past the next multiple of k (Dynasor); never below the minimum thinking."""
        if not thinking or thinking_tokens < self.spec.min_thinking:
            return False
        due = bool(self.spec.cue_ids) and any(t in self.spec.cue_ids for t in new_ids)
        every = self.spec.every
        if every is not None and thinking_tokens >= self._next_grid:
            self._next_grid = (thinking_tokens // every + 1) * every
            due = True
        return due

    def judge(self, trial: Trial) -> Verdict:
        spec = self.spec
        answer = answer_of(spec.inducer, trial.text)
        self.answers.append(answer)
        conf = confidence_of(trial.logprobs, spec.confidence)
        agreeing = 0
        if answer is not None:
            for past in reversed(self.answers):
                if past != answer:
                    break
                agreeing += 1
        exit_by = None
        if spec.threshold is not None and answer is not None and conf >= spec.threshold:
            exit_by = "deer"
        elif spec.agree is not None and agreeing >= spec.agree:
            exit_by = "dynasor"
        return Verdict(exit_by, answer, conf, agreeing)
