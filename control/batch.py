"""The control stacks of a whole batch, stepped with batched array operations.

`ControlStack` (stack.py) is the specification: one request, one step, plain Python.
Stepping one stack per batch row costs microseconds per row and step, linear in the batch
(bench/step_cost.py). `BatchControl` gives the same logits, forced tokens and events
(tests/controllers/test_batch.py checks it against per-row stacks on random batches) with
each row's state in arrays indexed by batch row:

- every step, for all rows at once: the phase tracker (phase, thinking length, close
  position), forced-sequence cursors, the budget's minimum (bans), TS's shift, and which
  rows need a decision;
- a forced sequence starting (mode prefix, budget cap, s1's "Wait") goes through the row's
  `ControlStack.decide`, the specification itself;
- LYNX's cues are scored in one probe call for the step, then judged row by row as
  `LynxController` judges (lynx.py);
- tokens fed out of step (after preemption) and the close of thinking are handled row by row.

So Python work per step is proportional to the rows whose state changes, plus reading each
row's newest token from vLLM's output lists (as vLLM's own min_tokens processor reads their
lengths). A batch with no controlled row costs one length check.

Engine-free: vLLM's batch updates arrive as `add`, `remove`, `move`;
engine/logits_processor.py is the adapter. A removed request is parked by id so that a
preempted request resumes where it was (its forced sequence included).
"""

from __future__ import annotations

import array
import dataclasses
import math
import operator
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch

from thinkctl.control.base import Action, StepView
from thinkctl.control.budget import BudgetController
from thinkctl.control.lynx import LynxController, detail, exits
from thinkctl.control.phase import Phase
from thinkctl.control.spec import ControlSpec, LynxRuntime
from thinkctl.control.stack import ControlEvent, ControlStack
from thinkctl.probes.confidence import ConfidenceFeed, probe_input

# Requests that left the batch, kept so that a preempted one resumes; finished requests
# leave the same way and are never re-added, hence the bound.
PARKED_MAX = 1024

_PHASES = (Phase.BEFORE, Phase.THINKING, Phase.ANSWER)
BEFORE, THINKING, ANSWER = range(3)
_NO_MAX = np.iinfo(np.int64).max // 2  # a budget without a maximum
_NO_TOKEN = np.iinfo(np.int64).min  # matches no token id, not even a placeholder
_LOG_ODDS, _TEMPERATURE = 1, 2

_last = operator.itemgetter(-1)


def _int64s(values: list[int]) -> np.ndarray:
    """A list of ints as an int64 array, by the fastest route measured here (the buffer of
    an `array.array`: ~40 ns per value, against ~80 for np.fromiter over a map)."""
    return np.frombuffer(array.array("q", values), np.int64)


# Per-row state: name -> (dtype, value of an empty row).
_FIELDS: dict[str, tuple[type, object]] = {
    "on": (bool, False),  # the row holds a controlled request
    "consumed": (np.int64, 0),  # output tokens fed to the phase tracker
    "seen": (np.int64, -1),  # output length at the previous step
    "phase": (np.int8, BEFORE),
    "watch": (np.int64, _NO_TOKEN),  # the token that ends the phase: start, end, none
    "thinking": (np.int64, 0),  # tokens inside the thinking block, delimiters excluded
    "start": (np.int64, -1),  # think delimiters
    "end": (np.int64, -1),
    "mode": (bool, False),  # a forced reply prefix
    "max": (np.int64, _NO_MAX),  # the budget's maximum
    "min": (np.int64, 0),  # the budget's minimum, when it has stop ids to ban
    "wait_len": (np.int64, 0),  # s1's "Wait" (0: bans only)
    "lynx": (bool, False),
    "lynx_min": (np.int64, 0),  # LYNX's floor: cues before it are counted, not scored
    "q0": (np.float64, 0.0),  # its conformal thresholds
    "q1": (np.float64, 0.0),
    "cues": (np.int64, 0),  # cues counted, and the latest one's output position
    "cue_at": (np.int64, -1),
    "ts": (np.int8, 0),  # 0, _LOG_ODDS or _TEMPERATURE
    "ts_value": (np.float64, 0.0),  # log s, or T
    "forced_from": (np.int64, 0),  # the forced sequence's first output position
    "forced_end": (np.int64, 0),  # and the first after it (output lengths only grow)
    "shift_at": (np.int64, -1),  # the latest decided step, and whether it boosted the end
    "boosted": (bool, False),
    # Per-query effort (spec.QuerySpec), until the first output token settles the budget.
    "query": (bool, False),
    "q_cap": (np.int64, _NO_MAX),  # the spec's maximum: the largest budget, or the room
    "q_reserve": (bool, False),  # that maximum is the answer reserve's room
    "q_natural": (np.float64, np.nan),  # the latest prediction, log(1 + tokens)
    "q_sufficient": (np.float64, np.nan),
}


def _budget(stack: ControlStack) -> BudgetController:
    """The budget controller of a stack built from a spec with a budget."""
    return next(c for c in stack.controllers if isinstance(c, BudgetController))


def _lynx(stack: ControlStack) -> LynxController:
    """The LYNX controller of a stack built from a spec that asks for LYNX."""
    return next(c for c in stack.controllers if isinstance(c, LynxController))


class ProbeNotes(NamedTuple):
    """One step's scored LYNX cues that did not exit, as columns. Each is one trace event,
    made by `events` where the trace is read (the HTTP process), not in the decode loop."""

    ids: list[str]
    at: list[int]
    cue_index: list[int]
    score: list[float]
    rule: list[tuple]  # each row's LynxParams.rule
    min_thinking: list[int]
    latency_s: float

    def events(self) -> list[tuple[str, ControlEvent]]:
        cols = zip(self.ids, self.at, self.cue_index, self.score, self.rule,
                   self.min_thinking, strict=True)  # fmt: skip
        out = []
        for rid, at, c, s, r, m in cols:
            info = detail(tuple(map(tuple, r)), m, c, s, self.latency_s)  # lists after JSON
            out.append((rid, ControlEvent("lynx", "probe", at, (), info, True)))
        return out


class StepReport(NamedTuple):
    """What one step did: events (request id, event) in order, and the probe's notes."""

    events: list[tuple[str, ControlEvent]]
    notes: ProbeNotes | None = None

    def all(self) -> list[tuple[str, ControlEvent]]:
        """Every event of the step, notes included (no request has both in one step)."""
        return self.events + (self.notes.events() if self.notes is not None else [])


@dataclass
class _Parked:
    state: dict[str, object]
    forced: np.ndarray
    stop: np.ndarray
    stack: ControlStack
    confidence: tuple | None


class LengthRuntime(Protocol):
    """The engine side's length predictor (probes/length_predictor.py)."""

    def predict(self, features: torch.Tensor) -> np.ndarray:
        """(rows, captured features) -> (rows, 2) log(1 + tokens): natural, sufficient."""
        ...


class BatchControl:
    """The controlled rows of one batch. `probe` is the engine side's loaded LYNX probe
    (with `confidence`, it reads probes/confidence.py's value too); `length` its length
    predictor, for per-query effort."""

    def __init__(
        self, probe: LynxRuntime | None = None, length: LengthRuntime | None = None
    ) -> None:
        self._probe = probe
        self._length = length
        self._cues = np.array(sorted(probe.cue_ids) if probe else [], np.int64)
        self._feed = ConfidenceFeed() if getattr(probe, "confidence", False) else None
        self._a = {k: np.full(0, v, t) for k, (t, v) in _FIELDS.items()}
        self._forced = np.zeros((0, 1), np.int64)  # forced sequences, padded
        self._stop = np.full((0, 1), -1, np.int64)  # the budget's stop ids, padded with -1
        self._stacks: dict[int, ControlStack] = {}
        self._ids: dict[int, str] = {}
        self._outs: dict[int, list[int]] = {}
        self._parked: OrderedDict[str, _Parked] = OrderedDict()
        self._rows = np.zeros(0, np.int64)  # the controlled rows, ascending
        self._dirty = False
        self._bans: tuple | None = None  # cached index tensors (_ban_pairs, _log_odds)
        self._shift: tuple | None = None
        self._events: list[tuple[str, ControlEvent]] = []  # the current step's
        self._notes: ProbeNotes | None = None

    # -- batch updates -------------------------------------------------------------------

    def _grow(self, size: int) -> None:
        cap = len(self._a["on"])
        if size <= cap:
            return
        new = max(size, 2 * cap, 8)
        for k, (t, v) in _FIELDS.items():
            self._a[k] = np.concatenate([self._a[k], np.full(new - cap, v, t)])
        self._forced = np.concatenate([self._forced, np.zeros((new - cap, self._forced.shape[1]),
                                                              np.int64)])  # fmt: skip
        self._stop = np.concatenate([self._stop, np.full((new - cap, self._stop.shape[1]), -1,
                                                         np.int64)])  # fmt: skip

    def _widen(self, table: str, width: int) -> None:
        t = getattr(self, table)
        if width > t.shape[1]:
            pad = np.full((t.shape[0], width - t.shape[1]), -1 if table == "_stop" else 0)
            setattr(self, table, np.concatenate([t, pad], axis=1))

    def _changed(self) -> None:
        self._dirty = True  # recomputed at the next step, once for all of a step's updates

    def add(
        self,
        index: int,
        spec: ControlSpec | None,
        prompt_ids: Sequence[int] | None,
        output_ids: list[int],
        request_id: str = "",
    ) -> None:
        """Row `index` now holds a request (vLLM reuses rows: whatever was there goes)."""
        self._clear(index)
        if spec is None or not spec.has_step_controllers:
            self._changed()
            return
        self._grow(index + 1)
        parked = self._parked.pop(request_id, None) if request_id else None
        if parked is not None:
            self._unpark(index, parked)
        else:
            self._build(index, spec, prompt_ids or ())
        self._ids[index], self._outs[index] = request_id, output_ids
        self._changed()

    def _build(self, index: int, spec: ControlSpec, prompt_ids: Sequence[int]) -> None:
        a = self._a
        stack = spec.build(prompt_ids, self._probe)
        self._stacks[index] = stack
        a["on"][index] = True
        a["start"][index], a["end"][index] = spec.think
        self._set_phase(index, _PHASES.index(stack.tracker.phase))
        a["mode"][index] = spec.mode is not None
        if (b := spec.budget) is not None:
            a["max"][index] = _NO_MAX if b.max is None else b.max
            if b.query is not None:
                a["query"][index], a["q_cap"][index] = True, a["max"][index]
                a["q_reserve"][index] = b.reason == "answer_reserve"
            if b.stop:
                a["min"][index] = b.min
                a["wait_len"][index] = len(b.wait)
                self._widen("_stop", len(b.stop))
                self._stop[index, : len(b.stop)] = b.stop
        a["lynx"][index] = spec.lynx is not None
        if spec.lynx is not None:
            p = _lynx(stack).params
            a["lynx_min"][index], a["q0"][index], a["q1"][index] = p.min_thinking, p.q0, p.q1
        if (ts := spec.ts) is not None and ts.strength != 1:
            a["ts"][index] = _LOG_ODDS if ts.form == "log_odds" else _TEMPERATURE
            a["ts_value"][index] = math.log(ts.strength) if ts.form == "log_odds" else ts.strength
        if self._feed is not None:
            self._feed.reset(index)

    def remove(self, index: int) -> None:
        """Row `index`'s request left the batch (finished or preempted): parked by id."""
        if index < len(self._a["on"]) and self._a["on"][index] and self._ids.get(index):
            self._parked[self._ids[index]] = _Parked(
                {k: v[index].item() for k, v in self._a.items()},
                self._forced[index].copy(),
                self._stop[index].copy(),
                self._stacks[index],
                self._feed.export(index) if self._feed is not None else None,
            )
            while len(self._parked) > PARKED_MAX:
                self._parked.popitem(last=False)
        self._clear(index)
        self._changed()

    def _unpark(self, index: int, p: _Parked) -> None:
        for k, v in p.state.items():
            self._a[k][index] = v
        self._widen("_forced", len(p.forced))
        self._widen("_stop", len(p.stop))
        self._forced[index, : len(p.forced)] = p.forced
        self._stop[index, : len(p.stop)] = p.stop
        self._stacks[index] = p.stack
        if self._feed is not None:
            self._feed.restore(index, p.confidence)

    def _clear(self, index: int) -> None:
        if index >= len(self._a["on"]):
            return
        for k, (_, v) in _FIELDS.items():
            self._a[k][index] = v
        self._forced[index] = 0
        self._stop[index] = -1
        for d in (self._stacks, self._ids, self._outs):
            d.pop(index, None)

    def move(self, a: int, b: int, swap: bool) -> None:
        """Row a's request moves to row b; with `swap`, b's moves to a."""
        self._grow(max(a, b) + 1)
        src, dst = ([a, b], [b, a]) if swap else ([a], [b])
        for d in (self._stacks, self._ids, self._outs):
            moved = [d.pop(i, None) for i in src]
            for i, v in zip(dst, moved, strict=True):
                if v is not None:
                    d[i] = v
        for arr in (*self._a.values(), self._forced, self._stop):
            arr[dst] = arr[src]
        if not swap:
            self._clear(a)
        if self._feed is not None:
            self._feed.move(a, b, swap)
        self._changed()

    def events(self, index: int) -> list[ControlEvent]:
        """The events of row `index`'s request so far, less the probe's notes of steps
        taken in batch (`StepReport.notes`)."""
        return self._stacks[index].events

    # -- one decode step -----------------------------------------------------------------

    def _refresh(self) -> None:
        """After batch updates: the controlled rows, and which controls any of them uses
        (a step skips the work of controls no row asks for)."""
        a = self._a
        rows = np.flatnonzero(a["on"])
        self._rows, self._dirty = rows, False
        dense = len(rows) == 0 or rows[-1] == len(rows) - 1
        self._sel = slice(0, len(rows)) if dense else rows  # a slice reads views, no copies
        self._row_outs = [self._outs[int(i)] for i in rows]
        self._lynx_of = {int(r): _lynx(self._stacks[int(r)]) for r in rows[a["lynx"][rows]]}
        # Request ids and LYNX rules by batch row, as object columns: a step's probe notes
        # take theirs with one fancy index instead of a dict lookup per row.
        self._id_col = np.full(len(a["on"]), "", object)
        self._id_col[rows] = [self._ids[int(r)] for r in rows]
        self._rule_col = np.empty(len(a["on"]), object)
        for r, lynx in self._lynx_of.items():
            self._rule_col[r] = lynx.params.rule
        uses = ("mode", "lynx", "ts", "wait_len", "query")
        self._uses = {k: bool(a[k][rows].any()) for k in uses}
        self._uses["max"] = bool((a["max"][rows] < _NO_MAX).any())
        self._uses["min"] = bool((a["min"][rows] > 0).any())
        self._bans = self._shift = None  # cached index tensors: rows may hold other requests

    def step(
        self, logits: torch.Tensor, features: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> StepReport:
        """Act on the batch's (rows, vocab) logits in place, before sampling. `features`
        gives the captured hidden features of some batch rows at this step, (rows,
        features) for a tensor of row indices (None: no capture). Returns what the step
        did, tagged with request ids."""
        if self._dirty:
            self._refresh()
        rows = self._rows
        if not len(rows):
            return StepReport([])
        self._events, self._notes = [], None
        a, sel, uses = self._a, self._sel, self._uses
        outs = self._row_outs
        n = _int64s(list(map(len, outs)))
        try:
            last = _int64s(list(map(_last, outs)))
        except IndexError:  # a row with no output yet
            last = _int64s([o[-1] if o else -1 for o in outs])
        self._feed_tokens(rows, sel, n, last)
        if uses["query"]:
            self._query_budgets(rows, n, features)
        phase, thinking = a["phase"][sel], a["thinking"][sel]
        cue = self._is_cue(last) if uses["lynx"] else None
        if self._feed is not None:  # LYNX rows, until thinking closes
            tracked = (phase != ANSWER) & a["lynx"][sel]
            cue = cue if cue is not None else np.zeros(len(rows), bool)
            self._feed.step(rows[tracked], n[tracked], last[tracked], cue[tracked], logits)

        start = a["forced_from"][sel]
        forced = n < a["forced_end"][sel]
        going_on = forced.any()  # forced sequences in progress: their next tokens
        none = np.zeros(0, np.int64)
        force_rows = rows[forced] if going_on else none
        force_toks = self._forced[force_rows, (n - start)[forced]] if going_on else none
        decide = ~forced
        # Full-batch masks only for the controls some row uses.
        masks = uses["max"] or uses["min"] or uses["ts"]
        in_thought = decide & (phase == THINKING) if masks else None
        slow = np.zeros(len(rows), bool) if uses["mode"] or uses["max"] else None
        if uses["mode"]:
            slow |= decide & a["mode"][sel] & (n == 0)
        if uses["max"]:
            slow |= in_thought & (thinking >= a["max"][sel])
        under = in_thought & (thinking < a["min"][sel]) if uses["min"] else None
        if uses["wait_len"] and under is not None and under.any():  # s1's "Wait": where
            waits = under & (a["wait_len"][sel] > 0)  # the top choice is a stop id
            waits &= ~slow if slow is not None else True
            waits &= thinking + a["wait_len"][sel] <= a["max"][sel]
            if waits.any():
                w = rows[waits]
                top = logits[torch.from_numpy(w).to(logits.device)].argmax(-1).cpu().numpy()
                slow = np.zeros(len(rows), bool) if slow is None else slow
                slow[np.flatnonzero(waits)[(self._stop[w] == top[:, None]).any(axis=1)]] = True
        slow_at = np.flatnonzero(slow) if slow is not None else none
        # Fresh: one new token since the previous step, so the captured hidden state is
        # this token's. Only slow rows and cues need to know (most steps: a few rows).
        at_cue = np.flatnonzero(cue) if cue is not None else none
        if uses["lynx"]:  # a cue in a row that also changes otherwise: its stack decides
            keep = (phase[at_cue] == THINKING) & decide[at_cue] & a["lynx"][rows[at_cue]]
            at_cue = at_cue[keep & ~slow[at_cue] if slow is not None else keep]
        fresh: dict[int, bool] = {}
        if features is not None:
            seen = a["seen"]
            if len(slow_at):
                ok = (n[slow_at] == seen[rows[slow_at]] + 1) & (n[slow_at] > 0)
                fresh = dict(zip(slow_at.tolist(), ok.tolist(), strict=True))
            at_cue = at_cue[(n[at_cue] == seen[rows[at_cue]] + 1) & (n[at_cue] > 0)]
        else:
            at_cue = none
        a["seen"][sel] = n

        if uses["ts"]:  # only TS shifts logits: without it no row is ever boosted
            deciding = rows[decide] if going_on else sel
            a["shift_at"][deciding] = n[decide] if going_on else n
            a["boosted"][deciding] = False
        new_force: list[tuple[int, int, tuple[int, ...]]] = []  # (row, position, tokens)
        soft: list[tuple[int, Action]] = []
        for i in slow_at.tolist():
            r = int(rows[i])
            action = self._decide(r, int(n[i]), int(last[i]), fresh.get(i, False), logits, features)
            if action.force:
                new_force.append((r, int(n[i]), action.force))
            elif not action.is_empty:
                soft.append((r, action))
        # Rows whose stack would take the batch's usual action (a shift, a ban): not a
        # slow row, and not a scored cue (its note is the stack's action at that step).
        needs_steady = uses["ts"] or under is not None
        steady = (decide & ~slow if slow is not None else decide.copy()) if needs_steady else None
        if len(at_cue):
            scored = self._score_cues(rows, n, thinking, at_cue, features, new_force)
            if steady is not None:
                steady[scored] = False
        for r, at, seq in new_force:
            self._widen("_forced", len(seq))
            self._forced[r, : len(seq)] = seq
            a["forced_from"][r], a["forced_end"][r] = at, at + len(seq)
        if new_force:
            force_rows = np.concatenate([force_rows, [r for r, _, _ in new_force]])
            force_toks = np.concatenate([force_toks, [seq[0] for _, _, seq in new_force]])
        self._apply(logits, rows, steady, under, in_thought, force_rows, force_toks, soft)
        return StepReport(self._events, self._notes)

    def _query_budgets(self, rows: np.ndarray, n: np.ndarray, features) -> None:
        """Per-query effort: at a prefill step (no output yet; the captured row is the
        prompt's last token once its last chunk runs) the budget's maximum becomes the
        policy's budget for the predicted natural length. The first output token settles
        it, with an event; without a predictor or capture the largest budget stays."""
        a = self._a
        pending = np.flatnonzero(a["query"][rows])
        prefill = pending[n[pending] == 0]
        if len(prefill) and features is not None and self._length is not None:
            r = rows[prefill]
            pred = self._length.predict(features(torch.from_numpy(r)))
            a["q_natural"][r], a["q_sufficient"][r] = pred[:, 0], pred[:, 1]
            for row in r.tolist():
                ctl = _budget(self._stacks[row])
                # Never below the request's own minimum (min_thinking_tokens).
                budget = max(ctl.params.query.budget(a["q_natural"][row]), ctl.params.min_thinking)
                a["max"][row] = budget
                # Under its room's cap (answer reserve) the budget is what cuts, if it does.
                reserve = a["q_reserve"][row] and budget >= a["q_cap"][row]
                reason = "answer_reserve" if reserve else "budget"
                ctl.params = dataclasses.replace(ctl.params, max_thinking=budget, reason=reason)
        for row in rows[pending[n[pending] > 0]].tolist():
            a["query"][row] = False
            detail = (("effort", _budget(self._stacks[row]).params.query.effort),
                      ("max_thinking_tokens", int(a["max"][row])))  # fmt: skip
            if not np.isnan(a["q_natural"][row]):
                detail += (("predicted_natural_tokens", round(math.expm1(a["q_natural"][row]), 1)),
                           ("predicted_sufficient_tokens",
                            round(math.expm1(a["q_sufficient"][row]), 1)))  # fmt: skip
            event = ControlEvent("budget", "query_budget", 0, (), detail, True)
            self._stacks[row].events.append(event)
            self._events.append((self._ids[row], event))
            self._changed()  # settled: the next step's `uses` may drop "query"

    def _feed_tokens(self, rows: np.ndarray, sel, n: np.ndarray, last: np.ndarray) -> None:
        """The phase tracker, for every row: one new token each, in the usual step."""
        a = self._a
        one = n == a["consumed"][sel] + 1
        every = bool(one.all())
        r = sel if every else rows[one]
        tok = last if every else last[one]
        a["thinking"][r] += a["phase"][r] == THINKING  # undone below for a closing token
        a["consumed"][r] = n if every else n[one]
        hits = np.flatnonzero(tok == a["watch"][r])  # a delimiter: the phase moves on (rare)
        if len(hits):
            at = (n if every else n[one])[hits] - 1
            for row, pos in zip((rows if every else rows[one])[hits].tolist(), at.tolist(),
                                strict=True):  # fmt: skip
                self._next_phase(row, pos)
        if not every:
            for i in np.flatnonzero(n > a["consumed"][rows]):  # several new tokens at once
                self._feed_slowly(int(rows[i]), self._outs[int(rows[i])][: int(n[i])])

    def _feed_slowly(self, r: int, out: list[int]) -> None:
        a = self._a
        for at in range(int(a["consumed"][r]), len(out)):
            if out[at] == a["watch"][r]:
                self._next_phase(r, at, counted=False)
            elif a["phase"][r] == THINKING:
                a["thinking"][r] += 1
        a["consumed"][r] = len(out)

    def _set_phase(self, r: int, phase: int) -> None:
        a = self._a
        a["phase"][r] = phase
        watch = {BEFORE: a["start"][r], THINKING: a["end"][r]}.get(phase, _NO_TOKEN)
        a["watch"][r] = watch

    def _next_phase(self, r: int, at: int, counted: bool = True) -> None:
        """Row r's phase delimiter at output position `at`: thinking opens or closes.
        `counted`: the token was already counted as a thinking token."""
        if self._a["phase"][r] == BEFORE:
            self._set_phase(r, THINKING)
            return
        self._set_phase(r, ANSWER)
        self._a["thinking"][r] -= counted
        self._closed(r, at)

    def _closed(self, r: int, at: int) -> None:
        """Thinking closed at output position `at`: a soft exit if the step that chose the
        token boosted it (TS is the only controller that shifts logits)."""
        if self._a["shift_at"][r] == at and self._a["boosted"][r]:
            event = ControlEvent("ts", "ts", at, ())
            self._stacks[r].events.append(event)
            self._events.append((self._ids[r], event))
            self._a["shift_at"][r] = -1

    def _is_cue(self, tokens: np.ndarray) -> np.ndarray:
        if len(self._cues) == 1:
            return tokens == self._cues[0]
        return np.isin(tokens, self._cues)

    def _features(self, features, rows: np.ndarray) -> torch.Tensor:
        """The probe's input for batch `rows` at this step (probes/confidence.py)."""
        hidden = features(torch.from_numpy(rows))
        return probe_input(hidden, self._feed.values(rows) if self._feed is not None else None)

    def _decide(self, r, n, last, fresh, logits, features) -> Action:
        """A row whose state changes: its stack decides, as the specification does."""
        a, stack = self._a, self._stacks[r]
        hidden = (lambda: self._features(features, np.array([r]))[0]) if fresh else None
        view = StepView(n, _PHASES[a["phase"][r]], int(a["thinking"][r]), logits[r],
                        last if n else None, hidden)  # fmt: skip
        mark = len(stack.events)
        lynx = self._lynx_of.get(r)
        if lynx is not None:  # the cue count lives in the arrays; the controller borrows it
            lynx.cues, lynx.last_cue_at = int(a["cues"][r]), int(a["cue_at"][r])
        action, boosted = stack.decide(view)
        if lynx is not None:
            a["cues"][r], a["cue_at"][r] = lynx.cues, lynx.last_cue_at
        self._events += ((self._ids[r], e) for e in stack.events[mark:])
        if not action.force:
            a["boosted"][r] = a["end"][r] in boosted
        return action

    def _score_cues(self, rows, n, thinking, at_cue, features, new_force) -> np.ndarray:
        """LYNX at the cues (positions `at_cue` in `rows`) of rows that otherwise go on as
        before, as `LynxController` decides one (lynx.py), with the cue counts in arrays
        and one probe call for all."""
        a = self._a
        r = rows[at_cue]
        at = n[at_cue] - 1
        a["cues"][r] += a["cue_at"][r] != at  # each cue position counts once
        a["cue_at"][r] = at
        scored = at_cue[thinking[at_cue] >= a["lynx_min"][r]]  # below it: counted, unscored
        if not len(scored):
            return scored
        r = rows[scored]
        t0 = time.perf_counter()
        scores = np.asarray(self._probe.scores(self._features(features, r)), np.float64)
        latency = time.perf_counter() - t0
        leave = ~exits(scores, a["q0"][r], a["q1"][r])
        cue_index = a["cues"][r] - 1
        if leave.any():
            kept = r[leave]
            self._notes = ProbeNotes(self._id_col[kept].tolist(), n[scored[leave]].tolist(),
                                     cue_index[leave].tolist(), scores[leave].tolist(),
                                     self._rule_col[kept].tolist(),
                                     a["lynx_min"][kept].tolist(), latency)  # fmt: skip
        for i in [] if leave.all() else np.flatnonzero(~leave).tolist():  # exits: rare
            row, pos = int(r[i]), int(n[scored[i]])
            p = self._lynx_of[row].params
            info = detail(p.rule, p.min_thinking, int(cue_index[i]), float(scores[i]), latency)
            event = ControlEvent("lynx", "lynx", pos, p.close, info)
            new_force.append((row, pos, p.close))
            self._stacks[row].events.append(event)
            self._events.append((self._ids[row], event))
        return scored[~leave]

    def _apply(self, logits, rows, steady, under, in_thought, force_rows, force_toks, soft):
        """Every row's action on the logits, as `apply_actions` applies them row by row:
        forced rows first (nothing else on them), then bans, then shifts."""
        a, dev = self._a, logits.device
        shifts = []  # (rows, tokens, values) as tensors
        if self._uses["ts"]:
            ts = a["ts"][self._sel]
            log_odds = steady & in_thought & (ts == _LOG_ODDS)
            if log_odds.any():
                shifts.append(self._log_odds(rows[log_odds], dev))
            temperature = steady & in_thought & (ts == _TEMPERATURE)
            if temperature.any():  # z / T - z, from the logits as they came (a rare form)
                r = rows[temperature]
                end = torch.from_numpy(a["end"][r]).to(dev)
                z = logits[torch.from_numpy(r).to(dev), end].double().cpu().numpy()
                delta = z / a["ts_value"][r] - z
                a["boosted"][r] = delta > 0
                shifts.append((torch.from_numpy(r).to(dev), end,
                               torch.from_numpy(delta).to(dev, logits.dtype)))  # fmt: skip
        for r, action in soft:
            for tok, value in action.shift:
                shifts.append((torch.tensor([r], device=dev), torch.tensor([tok], device=dev),
                               torch.tensor([value], dtype=logits.dtype, device=dev)))  # fmt: skip
        if len(force_rows):
            fr = torch.as_tensor(np.asarray(force_rows, np.int64), device=dev)
            logits[fr] = float("-inf")
            logits[fr, torch.as_tensor(np.asarray(force_toks, np.int64), device=dev)] = 0.0
        ban = steady & under if under is not None else None
        if ban is not None and ban.any():
            logits[self._ban_pairs(rows[ban], dev)] = float("-inf")
        soft_bans = [(r, t) for r, action in soft for t in action.ban]
        if soft_bans:
            br, bt = torch.tensor(soft_bans, device=dev).T
            logits[br, bt] = float("-inf")
        for r, t, v in shifts:  # after bans: a banned token stays -inf whatever its shift
            logits.index_put_((r, t), v, accumulate=True)

    def _log_odds(self, rows: np.ndarray, device) -> tuple[torch.Tensor, ...]:
        """TS's log-odds shift on `rows` as index tensors, rebuilt only when they change."""
        a = self._a
        a["boosted"][rows] = a["ts_value"][rows] > 0
        if self._shift is None or not np.array_equal(self._shift[0], rows):
            values = torch.from_numpy(a["ts_value"][rows]).float().to(device)
            self._shift = (rows, torch.from_numpy(rows).to(device),
                           torch.from_numpy(a["end"][rows]).to(device), values)  # fmt: skip
        return self._shift[1:]

    def _ban_pairs(self, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, stop id) pairs of the rows under their minimum, rebuilt only when those
        rows change (as vLLM's min_tokens processor does)."""
        if self._bans is None or not np.array_equal(self._bans[0], rows):
            stop = self._stop[rows]
            keep = stop >= 0
            r = np.broadcast_to(rows[:, None], stop.shape)[keep]
            self._bans = (rows, torch.from_numpy(r).to(device),
                          torch.from_numpy(stop[keep]).to(device))  # fmt: skip
        return self._bans[1], self._bans[2]
