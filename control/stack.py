"""Several controllers in one request, and the per-request state that drives them.

Precedence, highest first, applied in this order by `ControlStack.step`:
1. A forced sequence already in progress: its next token, nothing else is asked.
2. A new forced sequence: the first controller (in stack order) that asks for one wins;
   its first token is emitted now and the rest on the following steps.
3. Bans: the union of every controller's bans.
4. Shifts: per token, the sum of every controller's log-odds shifts.

Idempotence: the position inside a forced sequence is derived from the number of
output tokens, never from a queue that is popped, so seeing the same step twice (a
discarded chunked-prefill sample, or a preempted request that is re-added) emits the
same token again rather than skipping one.

Events: a forced sequence is an event when it starts. A soft controller (one that only
shifts logits) gets an event, with no forced tokens, when the token it boosted at a step
that nothing forced turns out to be the end of thinking: it acted on the exit, though it
did not force it.
A controller may also report a decision that changed nothing (`Action.note`, e.g. a
probe that scored a cue and let thinking go on): an event with reason and detail only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from thinkctl.control.base import LEAVE, Action, Controller, StepView
from thinkctl.control.phase import Delimiters, PhaseTracker, initial_phase


class ControlEvent(NamedTuple):
    """A controller intervened: it forced `tokens` from output position `at` on. (A tuple:
    a LYNX batch makes one per scored cue and step.)"""

    controller: str
    reason: str
    at: int
    tokens: tuple[int, ...]
    # (name, number); a side probe's events (server/generation.py) also carry its answer text.
    detail: tuple[tuple[str, float | str | None], ...] = ()
    note: bool = False  # a reported decision that changed nothing


class ControlStack:
    def __init__(
        self,
        controllers: Sequence[Controller],
        delims: Delimiters,
        prompt_ids: Sequence[int] = (),
    ) -> None:
        self.controllers = list(controllers)
        self.tracker = PhaseTracker(delims, initial_phase(prompt_ids, delims))
        self._forced: tuple[int, ...] = ()
        self._forced_from = 0
        # (position, {token: (controller, reason)}) of the last step that shifted logits.
        self._shifted: tuple[int, dict[int, tuple[str, str]]] = (-1, {})
        self.events: list[ControlEvent] = []

    def step(
        self,
        output_ids: Sequence[int],
        logits: torch.Tensor,
        hidden: Callable[[], torch.Tensor] | None = None,
    ) -> Action:
        """Decide the token at position len(output_ids); `logits` is its (vocab,) row and
        `hidden` gives the latest token's features (only at the step that processes it)."""
        n = len(output_ids)
        if n > self.tracker.consumed:
            self.tracker.feed_all(output_ids[self.tracker.consumed : n])
            self._note_soft_exit(output_ids)
        if self._forced_from <= n < self._forced_from + len(self._forced):
            return Action(force=(self._forced[n - self._forced_from],))
        last = output_ids[n - 1] if n else None
        view = StepView(n, self.tracker.phase, self.tracker.thinking_tokens, logits, last, hidden)
        action, boosted = self.decide(view)
        if action.force:
            self._forced, self._forced_from = action.force, n
            # A forced token is not the model's choice: no soft exit can be credited for it.
            self._shifted = (n, {})
            return Action(force=action.force[:1], reason=action.reason)
        if boosted or self._shifted[1]:
            self._shifted = (n, boosted)
        return action

    def decide(self, view: StepView) -> tuple[Action, dict[int, tuple[str, str]]]:
        """Ask every controller about one step outside a forced sequence and merge their
        actions; events are recorded here. Returns the merged action (`force` holding the
        whole new sequence, if one starts) and, per token boosted in total, the first
        controller (name, reason) that shifted it."""
        n = view.n_output
        force: Action | None = None
        bans: set[int] = set()
        shifts: dict[int, float] = {}
        shifted_by: dict[int, tuple[str, str]] = {}
        acting, last = 0, LEAVE  # how many controllers change the logits, and the latest
        for controller in self.controllers:
            action = controller.decide(view)
            if action.note and not (action.force and force is None):
                self.events.append(
                    ControlEvent(controller.name, action.reason, n, (), action.detail, note=True)
                )
            if action.is_empty:
                continue
            acting, last = acting + 1, action
            if action.force and force is None:
                force = action
                self.events.append(
                    ControlEvent(controller.name, action.reason, n, action.force, action.detail)
                )
            bans |= action.ban
            for tok, delta in action.shift:
                shifts[tok] = shifts.get(tok, 0.0) + delta
                shifted_by.setdefault(tok, (controller.name, action.reason))
        # Only a boost can cause an exit; a token pushed down that still won is the model's.
        boosted = {t: who for t, who in shifted_by.items() if shifts[t] > 0}
        if force is not None:
            return Action(force=force.force, reason=force.reason), boosted
        if acting <= 1:  # nothing to merge (the usual step): that controller's own action
            return last, boosted
        return Action(ban=frozenset(bans), shift=tuple(shifts.items())), boosted

    def _note_soft_exit(self, output_ids: Sequence[int]) -> None:
        at, shifted_by = self._shifted
        closed = self.tracker.closed_at
        if closed is not None and closed == at and output_ids[at] in shifted_by:
            name, reason = shifted_by[output_ids[at]]
            self.events.append(ControlEvent(name, reason, at, ()))
            self._shifted = (-1, {})


def apply_action(action: Action, row: torch.Tensor) -> None:
    """Apply `action` in place to one (vocab,) logits row."""
    apply_actions([(0, action)], row.unsqueeze(0))


def apply_actions(actions: Sequence[tuple[int, Action]], logits: torch.Tensor) -> None:
    """Apply each (batch row, action) in place to the (rows, vocab) logits: a few index
    operations for the whole batch, not a few per row (each costs microseconds on CPU and
    a kernel launch on GPU)."""
    forced: list[tuple[int, int]] = []
    banned: list[tuple[int, int]] = []
    shifted: list[tuple[int, int]] = []
    deltas: list[float] = []
    for index, action in actions:
        if action.force:  # a forced row takes no bans or shifts
            forced.append((index, action.force[0]))
            continue
        banned += ((index, tok) for tok in action.ban)
        for tok, delta in action.shift:
            shifted.append((index, tok))
            deltas.append(delta)
    device = logits.device
    if forced:
        rows, toks = torch.tensor(forced, device=device).T
        # -inf everywhere but the forced token: no later sampler stage can pick another.
        logits[rows] = float("-inf")
        logits[rows, toks] = 0.0
    if banned:
        rows, toks = torch.tensor(banned, device=device).T
        logits[rows, toks] = float("-inf")
    if shifted:  # after bans: a banned token stays -inf whatever its shift
        rows, toks = torch.tensor(shifted, device=device).T
        values = torch.tensor(deltas, dtype=logits.dtype, device=device)
        logits.index_put_((rows, toks), values, accumulate=True)
