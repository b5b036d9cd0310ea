"""The control spec: what the HTTP side sends the engine for one request.

It travels in `SamplingParams.extra_args[SPEC_KEY]` as plain data (token ids already
resolved, so the engine side needs no tokenizer) and is validated twice with the same
model: in the frontend by the logits processor's `validate_params` (a bad spec is a
400, never an engine crash) and again when the worker builds the stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.controllers.budget import BudgetController, BudgetParams
from server.controllers.phase import Delimiters
from server.controllers.stack import ControlStack

SPEC_KEY = "thinkctl"
# Key of the request id in extra_args: the worker tags control events with it.
ID_KEY = "thinkctl_id"


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int | None = Field(default=None, ge=0)
    min: int = Field(default=0, ge=0)
    close: list[int] = []
    wait: list[int] = []
    stop: list[int] = []

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        self.params()  # BudgetParams holds the cross-field rules
        return self

    def params(self) -> BudgetParams:
        return BudgetParams(
            max_thinking=self.max,
            min_thinking=self.min,
            close=tuple(self.close),
            wait=tuple(self.wait),
            stop_ids=frozenset(self.stop),
        )


class ControlSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    think: tuple[int, int]  # (start, end) delimiter ids
    budget: BudgetSpec | None = None

    def controller_names(self) -> list[str]:
        return ["budget"] if self.budget is not None else []

    def build(self, prompt_ids: Sequence[int] = ()) -> ControlStack:
        controllers = []
        if self.budget is not None:
            controllers.append(BudgetController(self.budget.params()))
        return ControlStack(controllers, Delimiters(*self.think), prompt_ids)
