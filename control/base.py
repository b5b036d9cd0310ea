"""The controller contract: per-request, engine-free decision logic.

A controller sees one decode step of one request and returns an `Action`. It never
imports vLLM or FastAPI. `ControlStack` (stack.py) combines several controllers for one
request; `BatchControl` (batch.py) gives a whole batch the same behaviour with array
operations, asking the stacks only for rows whose state changes, and
`engine/logits_processor.py` hands it vLLM's logits.

Call order, per request and per step (driven by `ControlStack.step`):
1. The stack feeds output tokens it has not seen yet into the `PhaseTracker`.
2. If a forced sequence is in progress, its next token is emitted and no controller
   is asked (a forced string is never interrupted).
3. Otherwise each controller's `decide(view)` is called in stack order; the actions
   are merged by the precedence documented in stack.py.

Invariant: `decide` must depend only on the `StepView` it is given and on the
controller's immutable parameters, so that calling it twice for the same step (as
vLLM does for discarded chunked-prefill samples) gives the same action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from thinkctl.control.phase import Phase


class StepView(NamedTuple):
    """What a controller sees at one step of one request (immutable; a tuple because one
    is built per request and decode step, where a frozen dataclass costs microseconds)."""

    n_output: int  # tokens generated so far (the position of the token about to be sampled)
    phase: Phase
    thinking_tokens: int  # tokens inside the thinking block so far, delimiters excluded
    logits: torch.Tensor  # (vocab,) float32 row of this request, before sampling
    last_token: int | None = None  # the latest output token (None before the first)
    # Features of the latest token (probes/capture.py), offered only at the decode step
    # that processes it; a callable so that they are gathered only when a controller asks.
    hidden: Callable[[], torch.Tensor] | None = None


class Action(NamedTuple):
    """What to do with the next token. The empty action leaves the logits alone.

    - `force`: a token sequence to emit from this step on, one token per step.
    - `ban`: token ids whose logits become -inf.
    - `shift`: additive log-odds shifts per token id.
    - `reason`: the exit/intervention reason reported in the control trace.
    - `detail`: numbers that explain the decision (e.g. a probe's score), for the trace.
    - `note`: report `detail` in the trace even when the action changes nothing.

    A tuple, like `StepView`: one or two are built per request and decode step.
    """

    force: tuple[int, ...] = ()
    ban: frozenset[int] = frozenset()
    shift: tuple[tuple[int, float], ...] = ()
    reason: str = ""
    detail: tuple[tuple[str, float], ...] = ()
    note: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.force or self.ban or self.shift)


LEAVE = Action()


class Controller(Protocol):
    """One stop controller. `name` appears in the control trace."""

    name: str

    def decide(self, view: StepView) -> Action: ...
