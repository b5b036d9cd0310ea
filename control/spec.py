"""The control spec: what the HTTP side sends the engine for one request.

It travels in `SamplingParams.extra_args[SPEC_KEY]` as plain data (token ids already
resolved, so the engine side needs no tokenizer) and is validated twice with the same
model: in the frontend by the logits processor's `validate_params` (a bad spec is a
400, never an engine crash) and again when the worker builds the stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkctl.control.base import Controller
from thinkctl.control.budget import BudgetController, BudgetParams
from thinkctl.control.lynx import LynxController, LynxParams, Scorer
from thinkctl.control.mode import ModeController, ModeParams
from thinkctl.control.phase import Delimiters, Phase
from thinkctl.control.stack import ControlStack
from thinkctl.control.top_h import DEFAULT_ALPHA
from thinkctl.control.ts import TSController, TSParams
from thinkctl.probes.effort_table import QueryBudget

# LYNX's risk level: a share of cue events, strictly between 0 and 1.
Delta = Annotated[float, Field(gt=0, lt=1)]

SPEC_KEY = "thinkctl"
# Key of the request id in extra_args: the worker tags control events with it.
ID_KEY = "thinkctl_id"


class QuerySpec(BaseModel):
    """Per-query effort (probes/effort_table.QueryBudget): at the prefill step the engine
    sets the budget's maximum from the prompt's predicted natural thinking length
    (probes/length_predictor.py); `BudgetSpec.max`, the largest of these budgets, holds
    until then and wherever no prediction can be made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effort: float = Field(ge=0, le=1)
    edges: list[float] = []
    budgets: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> QuerySpec:
        self.budget()  # QueryBudget holds the rules
        return self

    def budget(self) -> QueryBudget:
        return QueryBudget(self.effort, tuple(self.edges), tuple(self.budgets))


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int | None = Field(default=None, ge=0)
    query: QuerySpec | None = None
    min: int = Field(default=0, ge=0)
    close: list[int] = []
    wait: list[int] = []
    stop: list[int] = []
    # "answer_reserve": the maximum is what max_tokens leaves after the answer's reserve.
    reason: Literal["budget", "answer_reserve"] = "budget"

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        self.params()  # BudgetParams holds the cross-field rules
        # The batch knows a row has a maximum from the spec; the engine only lowers it.
        if self.query is not None and self.max is None:
            raise ValueError("a per-query budget needs its maximum (the largest budget)")
        return self

    def params(self) -> BudgetParams:
        return BudgetParams(
            max_thinking=self.max,
            query=self.query.budget() if self.query is not None else None,
            min_thinking=self.min,
            close=tuple(self.close),
            wait=tuple(self.wait),
            stop_ids=frozenset(self.stop),
            reason=self.reason,
        )


class TSSpec(BaseModel):
    """Scale the end-of-thinking token's probability while thinking (`thinkctl.ts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strength: float = Field(
        gt=0, le=1e6, description="s in z_end += log s (> 1 stops earlier), or T in z_end / T."
    )
    form: Literal["log_odds", "temperature"] = "log_odds"


class TopHSpec(BaseModel):
    """Entropy-bounded truncation: keep the top tokens while H(q) <= alpha * H(p)
    (`thinkctl.top_h`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, le=1)
    phase: Literal["thinking", "answer", "both"] = "thinking"

    def applies(self, phase: Phase) -> bool:
        """Whether the next token, sampled in `phase`, is truncated."""
        if self.phase == "both":
            return True
        return (phase is Phase.THINKING) == (self.phase == "thinking")


class LynxSpec(BaseModel):
    """One rule: `delta` (split conformal per cue event), or `threshold` on the probe's
    score (exit when it is exceeded), chosen by the server from the probe's risk table
    for `max_accuracy_loss` or an effort level (calibration/risk.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delta: Delta | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    max_accuracy_loss: float | None = Field(default=None, gt=0, lt=1)  # reported only
    close: list[int] = Field(min_length=1)  # end of thinking, then the answer inducer
    min_thinking: int = Field(default=0, ge=0)  # no exit before this much thinking

    @model_validator(mode="after")
    def _one_rule(self) -> LynxSpec:
        if (self.delta is None) == (self.threshold is None):
            raise ValueError("LYNX needs exactly one of delta and threshold")
        return self

    def rule(self) -> tuple[tuple[str, float], ...]:
        """What the trace reports of the rule."""
        if self.delta is not None:
            return (("delta", self.delta),)
        loss = (("max_accuracy_loss", self.max_accuracy_loss),) if self.max_accuracy_loss else ()
        return (("threshold", self.threshold), *loss)


class LynxRuntime(Protocol):
    """What the engine side holds for LYNX: the loaded probe (probes/artifact.py)."""

    cue_ids: frozenset[int]

    def thresholds(self, delta: float) -> tuple[float, float]: ...

    def scorer(self) -> Scorer: ...

    def scores(self, features: torch.Tensor) -> np.ndarray:
        """`scorer` over a (rows, features) batch at once."""
        ...


class ControlSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    think: tuple[int, int]  # (start, end) delimiter ids
    mode: list[int] | None = Field(default=None, min_length=1)  # forced reply prefix
    budget: BudgetSpec | None = None
    ts: TSSpec | None = None
    top_h: TopHSpec | None = None  # runs in its own, argmax-invariant logits processor
    lynx: LynxSpec | None = None

    @property
    def has_step_controllers(self) -> bool:
        return any(x is not None for x in (self.mode, self.budget, self.ts, self.lynx))

    def controller_names(self) -> list[str]:
        """The trace's names; a budget whose maximum the answer reserve set is named so."""
        names = ("mode", "budget", "lynx", "ts", "top_h")
        out = [name for name in names if getattr(self, name) is not None]
        b = self.budget
        if b is not None and b.reason == "answer_reserve" and b.query is None:
            out[out.index("budget")] = "answer_reserve"
        return out

    def build(
        self, prompt_ids: Sequence[int] = (), lynx: LynxRuntime | None = None
    ) -> ControlStack:
        """The stack of step controllers, in precedence order (top-H is not among them).

        `lynx` is the engine side's loaded probe; a spec asking for LYNX needs it."""
        controllers: list[Controller] = []
        if self.mode is not None:  # first: the reply's opening tokens win over everything
            controllers.append(ModeController(ModeParams(tuple(self.mode))))
        if self.budget is not None:
            controllers.append(BudgetController(self.budget.params()))
        if self.lynx is not None:  # after the budget: a hard cap wins over a probe's exit
            if lynx is None:
                raise ValueError("LYNX was asked for, but no probe is loaded in the engine")
            spec = self.lynx
            # A score threshold is the prediction set's rule with class 1 always plausible.
            q0, q1 = lynx.thresholds(spec.delta) if spec.delta else (spec.threshold, 1.0)
            params = LynxParams(lynx.cue_ids, tuple(spec.close), spec.rule(), q0, q1,
                                spec.min_thinking)  # fmt: skip
            controllers.append(LynxController(params, lynx.scorer()))
        if self.ts is not None:
            ts = TSParams(self.think[1], self.ts.strength, self.ts.form)
            controllers.append(TSController(ts))
        return ControlStack(controllers, Delimiters(*self.think), prompt_ids)
