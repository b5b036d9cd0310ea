"""Run one chat request through the engine: n choices, split into reasoning and content.

Each choice is its own engine request (`<id>-<index>`), so that the logits processor's
control events, which carry that id, belong to exactly one choice. The thinking/answer
split is made on token ids with the same `PhaseTracker` the controllers use, so
`reasoning_tokens` and the controllers' notion of "thinking" always agree.

The plan's reply rules then apply to the answer only: stop strings (server/stop_strings.py;
a match aborts that choice's engine request) and tool calls (server/tool_calls.py; the
answer is held back until the choice ends, then parsed whole).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from engine.client import Delta, Engine
from server import metrics
from server.controllers.phase import Part, Phase, PhaseTracker, initial_phase
from server.controllers.spec import ID_KEY, SPEC_KEY
from server.controllers.stack import ControlEvent
from server.logprobs import chat_logprobs
from server.model_info import ModelInfo
from server.plan import Plan
from server.protocol import ControlEventOut, ControlTrace
from server.stop_strings import StopStrings
from server.tool_calls import finish_reason, tool_calls


@dataclass
class ChoiceDelta:
    index: int
    reasoning: str = ""
    content: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # set on the choice's last delta
    logprobs: list[dict] | None = None  # OpenAI's entries for token_ids, when asked for
    tool_calls: list[dict] | None = None  # on the last delta, when tools were called


@dataclass
class _Choice:
    index: int
    request_id: str
    tracker: PhaseTracker | None
    entered_thinking: bool
    params: Any = None  # the engine's sampling parameters for this choice
    stops: StopStrings | None = None
    answer: list[str] = field(default_factory=list)  # held back for the tool parser
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    trace: ControlTrace | None = None
    started_tokens: bool = False  # for the time-to-first-token metrics
    started_answer: bool = False


# (choice, the engine's delta)
_Item = tuple[_Choice, Delta]


class Generation:
    """Builds every choice's engine parameters at once, so bad values (an EngineError)
    surface before any response is sent."""

    def __init__(self, engine: Engine, info: ModelInfo, plan: Plan, request_id: str) -> None:
        self.engine, self.info = engine, info
        self.prompt_ids, self.spec, self.reply = plan.prompt_ids, plan.spec, plan.reply
        spec_wire = plan.spec.model_dump(mode="json") if plan.spec is not None else None
        self.choices = [self._new_choice(i, f"{request_id}-{i}") for i in range(plan.n)]
        for c in self.choices:
            sampling = dict(plan.sampling)
            if sampling.get("seed") is not None:
                sampling["seed"] += c.index  # n choices must not repeat each other
            extra = None if spec_wire is None else {SPEC_KEY: spec_wire, ID_KEY: c.request_id}
            c.params = engine.params(sampling, extra)
            engine.verify(c.params)
            if self.reply.stop:
                c.stops = StopStrings(self.reply.stop, self.reply.include_stop)
        self.created = time.monotonic()  # the request's arrival, for the waiting-time metrics

    def _new_choice(self, index: int, request_id: str) -> _Choice:
        delims = self.info.delims
        if delims is None:
            return _Choice(index, request_id, None, False)
        phase = initial_phase(self.prompt_ids, delims)
        return _Choice(index, request_id, PhaseTracker(delims, phase), phase is Phase.THINKING)

    async def _pump(self, choice: _Choice) -> AsyncGenerator[_Item, None]:
        async for d in self.engine.generate(self.prompt_ids, choice.params, choice.request_id):
            yield choice, d

    def _split(self, choice: _Choice, ids: list[int], text: str) -> ChoiceDelta:
        delta = ChoiceDelta(choice.index, token_ids=ids)
        if choice.tracker is None:
            delta.content = text
            return delta
        parts = [choice.tracker.feed(t) for t in ids]
        if Part.DELIMITER not in parts and len(set(parts)) <= 1:
            # The common case (one token per step): the engine's incremental text is exact.
            if parts and parts[0] is Part.REASONING:
                delta.reasoning = text
            else:
                delta.content = text
            return delta
        # A delta that crosses a delimiter: decode each run of tokens on its own.
        run: list[int] = []
        for i, (tok, part) in enumerate(zip(ids, parts, strict=True)):
            run.append(tok)
            if i + 1 == len(ids) or parts[i + 1] is not part:
                if part is not Part.DELIMITER:
                    piece = self.info.tokenizer.decode(run, skip_special_tokens=True)
                    if part is Part.REASONING:
                        delta.reasoning += piece
                    else:
                        delta.content += piece
                run = []
        return delta

    async def stream(self) -> AsyncIterator[ChoiceDelta]:
        """Deltas of all choices, interleaved as the engine produces them."""
        pumps = [self._pump(c) for c in self.choices]
        # One choice (the usual request) reads its engine stream directly: a task and a
        # queue between them cost two task switches per token on the HTTP side.
        items = pumps[0] if len(pumps) == 1 else _interleave(pumps)
        try:
            async for choice, out in items:
                if choice.finish_reason is not None:
                    continue  # stopped by a stop string; its engine request is being aborted
                choice.token_ids.extend(out.token_ids)
                delta = self._split(choice, out.token_ids, out.text)
                if out.logprobs is not None and self.reply.top_logprobs is not None:
                    delta.logprobs = chat_logprobs(
                        out.token_ids, out.logprobs, self.reply.top_logprobs,
                        self.info.tokenizer, self.reply.tokens_as_ids,
                    )  # fmt: skip
                finish = await self._answer_rules(choice, delta, out.finish_reason)
                self._observe_first(choice, delta)
                if finish is not None:
                    choice.finish_reason = delta.finish_reason = finish
                    choice.trace = self._trace(choice)
                    metrics.observe_choice(choice.trace, len(choice.token_ids))
                yield delta
                if all(c.finish_reason is not None for c in self.choices):
                    break
        finally:
            await items.aclose()
            unfinished = [c.request_id for c in self.choices if c.finish_reason is None]
            if unfinished:
                await self.engine.abort(unfinished)
            for c in self.choices:
                self.engine.events(c.request_id)  # forget events of aborted choices

    async def _answer_rules(
        self, choice: _Choice, delta: ChoiceDelta, engine_finish: str | None
    ) -> str | None:
        """Stop strings and tool calls on the delta's answer text; the choice's OpenAI
        finish reason once it has ended."""
        finish = None if engine_finish is None else _openai_finish(engine_finish)
        if choice.stops is not None:
            delta.content = choice.stops.feed(delta.content, final=finish is not None)
            if choice.stops.matched is not None and finish is None:
                finish = "stop"
                await self.engine.abort([choice.request_id])
        if self.reply.tools != "none":
            choice.answer.append(delta.content)
            delta.content = ""
            if finish is not None:
                parser = self.info.tool_parser
                content, calls = tool_calls(self.reply, "".join(choice.answer), parser)
                delta.content, delta.tool_calls = content or "", calls or None
                finish = finish_reason(self.reply, finish, calls)
        return finish

    def _observe_first(self, choice: _Choice, delta: ChoiceDelta) -> None:
        if delta.token_ids and not choice.started_tokens:
            choice.started_tokens = True
            metrics.FIRST_TOKEN.observe(time.monotonic() - self.created)
        if delta.content and not choice.started_answer:
            choice.started_answer = True
            metrics.FIRST_ANSWER_TOKEN.observe(time.monotonic() - self.created)

    def _trace(self, choice: _Choice) -> ControlTrace:
        events = self.engine.events(choice.request_id)
        metrics.observe_probe(events)
        tracker = choice.tracker
        n_out = len(choice.token_ids)
        forced = [_forced_count(e, n_out) for e in events]
        names = self.spec.controller_names() if self.spec else []
        if not any(e.reason == "answer_reserve" for e in events):
            # The answer reserve is a default safety net: named only where it acted.
            names = [n for n in names if n != "answer_reserve"]
        return ControlTrace(
            controllers=names,
            exit_reason=_exit_reason(choice, events),
            thinking_tokens=tracker.thinking_tokens if tracker else 0,
            forced_tokens=sum(forced),
            events=[_event_out(e, k) for e, k in zip(events, forced, strict=True)],
        )

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.tracker.thinking_tokens for c in self.choices if c.tracker)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices)


_DONE = object()  # a pump's end, in the interleaving queue


async def _interleave(
    pumps: list[AsyncGenerator[_Item, None]],
) -> AsyncGenerator[_Item, None]:
    """Items of several streams in the order they arrive; the first error is raised."""
    queue: asyncio.Queue = asyncio.Queue()

    async def drain(pump: AsyncGenerator[_Item, None]) -> None:
        try:
            async for item in pump:
                queue.put_nowait(item)
        except Exception as exc:  # the engine's error reaches the consumer
            queue.put_nowait(exc)
        queue.put_nowait(_DONE)

    tasks = [asyncio.create_task(drain(p)) for p in pumps]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _openai_finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _forced_count(event: ControlEvent, n_out: int) -> int:
    """Forced tokens that made it into the output (the request may end mid-sequence)."""
    return max(0, min(len(event.tokens), n_out - event.at))


def _event_out(e: ControlEvent, forced: int) -> ControlEventOut:
    detail = dict(e.detail)
    ints = {k: int(detail[k]) for k in ("cue_index", "min_thinking", "max_thinking_tokens")
            if detail.get(k) is not None}  # fmt: skip
    floats = ("score", "delta", "threshold", "max_accuracy_loss", "effort",
              "predicted_natural_tokens", "predicted_sufficient_tokens")  # fmt: skip
    return ControlEventOut(
        controller=e.controller, reason=e.reason, at=e.at, forced_tokens=forced,
        **{k: detail.get(k) for k in floats}, **ints,
    )  # fmt: skip


def _exit_reason(choice: _Choice, events: list[ControlEvent]) -> str:
    tracker = choice.tracker
    if tracker is None or not (choice.entered_thinking or tracker.phase is not Phase.BEFORE):
        return "no_thinking"
    if tracker.closed_at is not None:
        for e in events:  # a forced close, or a soft controller's shift that the model took
            if e.note:
                continue  # a decision that changed nothing (a probe that let thinking go on)
            if e.at == tracker.closed_at and (not e.tokens or e.tokens[0] == tracker.delims.end):
                return e.reason
        return "natural"
    return "max_tokens" if choice.finish_reason == "length" else "stop"
