"""Run one chat request through the engine: n choices, split into reasoning and content.

Each choice is its own engine request (`<id>-<index>`), so that the logits processor's
control events, which carry that id, belong to exactly one choice. The thinking/answer
split is made on token ids with the same `PhaseTracker` the controllers use, so
`reasoning_tokens` and the controllers' notion of "thinking" always agree.

The plan's reply rules then apply to the answer only: stop strings (server/stop_strings.py;
a match aborts that choice's engine request) and tool calls: streamed through vLLM's
streaming tool parser for tool_choice "auto" in a chat stream (engine/tools.py), else
held back until the choice ends and parsed whole (server/tool_calls.py).

Side probes (DEER, Dynasor; server/side_probe.py): when a choice's prober says a trial is
due, a short greedy engine request (`<id>-<index>-trial<k>`) answers from the output so
far plus the close sequence, while the choice's own request runs on; its output is held
back until the trial is judged. Thinking goes on: the held output is released. Exit: the
choice's request is aborted, its held output dropped, the close sequence emitted, and a
continuation (`<id>-<index>+answer`) answers from the trial's prefix, so the reply is
exactly what stopping there gives. Both reuse the choice's blocks in vLLM's prefix cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thinkctl.control.phase import Part, Phase, PhaseTracker, initial_phase
from thinkctl.control.spec import ID_KEY, SPEC_KEY, ControlSpec
from thinkctl.control.stack import ControlEvent
from thinkctl.engine.client import Delta, Engine
from thinkctl.errors import EngineError
from thinkctl.server import metrics
from thinkctl.server.logprobs import chat_logprobs
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import Plan
from thinkctl.server.replies import AnswerReserveOut, ControlEventOut, ControlTrace, StopReason
from thinkctl.server.side_probe import SideProber, Trial
from thinkctl.server.stop_strings import StopStrings
from thinkctl.server.tool_calls import finish_reason, tool_calls

if TYPE_CHECKING:
    from thinkctl.engine.tools import ToolCallStream


@dataclass
class ChoiceDelta:
    index: int
    reasoning: str = ""
    content: str = ""
    token_ids: list[int] = field(default_factory=list)
    content_ids: list[int] = field(default_factory=list)  # those of `content`
    finish_reason: str | None = None  # set on the choice's last delta
    stop_reason: StopReason = None  # on the last delta: the stop string or token id
    logprobs: list[dict] | None = None  # OpenAI's entries for token_ids, when asked for
    tool_calls: list[dict] | None = None  # on the last delta, when tools were called


@dataclass
class _Side:
    """A choice's side probes: the prober, the output held while a trial runs, and what
    the trials cost and said."""

    prober: SideProber
    trying: bool = False
    held: list[Delta] = field(default_factory=list)
    trials: int = 0
    probe_tokens: int = 0
    events: list[ControlEvent] = field(default_factory=list)


@dataclass
class _Choice:
    index: int
    request_id: str
    tracker: PhaseTracker | None
    entered_thinking: bool
    params: Any = None  # the engine's sampling parameters for this choice
    engine_id: str = ""  # its engine request now: request_id, or its continuation's
    offset: int = 0  # output tokens before the engine request's own output
    past_events: list[ControlEvent] = field(default_factory=list)  # of an aborted request
    side: _Side | None = None
    stops: StopStrings | None = None
    answer: list[str] = field(default_factory=list)  # held back for the tool parser
    tool_stream: ToolCallStream | None = None  # or, streaming "auto", parsed as it comes
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: StopReason = None
    trace: ControlTrace | None = None
    cached_tokens: int = 0  # prompt tokens vLLM's prefix cache served its first request
    started_tokens: bool = False  # for the time-to-first-token metrics
    started_answer: bool = False


# (choice, the engine request it came from, its delta or a side probe's trial)
_Item = tuple[_Choice, str, Delta | Trial]


class Generation:
    """Builds every choice's engine parameters at once, so bad values (an EngineError)
    surface before any response is sent."""

    def __init__(
        self, engine: Engine, info: ModelInfo, plan: Plan, request_id: str,
        stream_tools: bool = False,
    ) -> None:  # fmt: skip
        self.engine, self.info = engine, info
        self.prompt_ids, self.spec, self.reply = plan.prompt_ids, plan.spec, plan.reply
        self.side, self.sampling, self.reserve = plan.side, plan.sampling, plan.reserve
        if self.side is not None:  # a trial: greedy, with logprobs for DEER's confidence
            self.trial_params = engine.params(
                {"max_tokens": self.side.answer_tokens, "temperature": 0.0, "logprobs": 0}, None
            )
        self.request_id = request_id  # its choices' engine requests are <request_id>-<index>
        self.choices = [self._new_choice(i, f"{request_id}-{i}") for i in range(plan.n)]
        for c in self.choices:
            c.params = self._params(plan.sampling, c, self.spec, c.request_id)
            engine.verify(c.params)
            if self.side is not None:
                c.side = _Side(SideProber(self.side))
            if self.reply.stop:
                c.stops = StopStrings(self.reply.stop, self.reply.include_stop)
            if stream_tools and self.reply.tools == "auto" and info.tool_parser is not None:
                c.tool_stream = info.tool_parser.stream(self.reply.tool_defs,
                                                        self.reply.parallel_tool_calls)  # fmt: skip
        self.created = time.monotonic()  # the request's arrival, for the waiting-time metrics

    def _params(
        self, sampling: dict[str, Any], choice: _Choice, spec: ControlSpec | None, engine_id: str
    ) -> Any:
        sampling = dict(sampling)
        if sampling.get("seed") is not None:
            sampling["seed"] += choice.index  # n choices must not repeat each other
        wire = None if spec is None else {SPEC_KEY: spec.model_dump(mode="json"), ID_KEY: engine_id}
        return self.engine.params(sampling, wire)

    def _new_choice(self, index: int, request_id: str) -> _Choice:
        delims = self.info.delims
        if delims is None:
            return _Choice(index, request_id, None, False, engine_id=request_id)
        phase = initial_phase(self.prompt_ids, delims)
        return _Choice(index, request_id, PhaseTracker(delims, phase), phase is Phase.THINKING,
                       engine_id=request_id)  # fmt: skip

    async def _pump(
        self, choice: _Choice, prompt_ids: list[int], params: Any, engine_id: str
    ) -> AsyncGenerator[_Item, None]:
        async for d in self.engine.generate(prompt_ids, params, engine_id):
            yield choice, engine_id, d

    def _split(self, choice: _Choice, ids: list[int], text: str) -> ChoiceDelta:
        delta = ChoiceDelta(choice.index, token_ids=ids)
        if choice.tracker is None:
            delta.content, delta.content_ids = text, ids
            return delta
        parts = [choice.tracker.feed(t) for t in ids]
        if Part.DELIMITER not in parts and len(set(parts)) <= 1:
            # The common case (one token per step): the engine's incremental text is exact.
            if parts and parts[0] is Part.REASONING:
                delta.reasoning = text
            else:
                delta.content, delta.content_ids = text, ids
            return delta
        delta.content_ids = [t for t, p in zip(ids, parts, strict=True) if p is Part.CONTENT]
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
        pumps = [self._pump(c, self.prompt_ids, c.params, c.request_id) for c in self.choices]
        # One choice without side probes (the usual request) reads its engine stream
        # directly: a task and a queue between them cost two task switches per token.
        mux = None if len(pumps) == 1 and self.side is None else _Mux(pumps)
        items = pumps[0] if mux is None else mux
        try:
            async for choice, engine_id, item in items:
                if choice.finish_reason is not None:
                    continue  # stopped by a stop string; its engine request is being aborted
                if isinstance(item, Trial):
                    assert mux is not None
                    async for delta in self._judge(choice, item, mux):
                        yield delta
                elif engine_id == choice.engine_id:  # else: a request an exit aborted
                    async for delta in self._take(choice, item, mux):
                        yield delta
                if all(c.finish_reason is not None for c in self.choices):
                    break
        finally:
            await items.aclose()
            unfinished = [c.engine_id for c in self.choices if c.finish_reason is None]
            if unfinished:
                await self.engine.abort(unfinished)
            for c in self.choices:  # forget events of aborted requests
                self.engine.events(c.engine_id)
                self.engine.events(c.request_id)

    async def _take(
        self, choice: _Choice, out: Delta, mux: _Mux | None
    ) -> AsyncIterator[ChoiceDelta]:
        """One engine delta of the choice (held back while one of its trials runs)."""
        side = choice.side
        if side is not None and side.trying:
            side.held.append(out)
            return
        yield await self._emit(choice, out)
        tracker = choice.tracker
        if side is None or choice.finish_reason is not None or tracker is None:
            return
        if side.prober.due(out.token_ids, tracker.thinking_tokens, tracker.phase is Phase.THINKING):
            assert mux is not None and self.side is not None
            prefix = [*self.prompt_ids, *choice.token_ids, *self.side.close]
            if len(prefix) + self.side.answer_tokens > self.info.max_model_len:
                return  # no room left in the context for a trial
            side.trying, side.trials = True, side.trials + 1
            trial_id = f"{choice.request_id}-trial{side.trials}"
            mux.add(self._trial(choice, prefix, len(choice.token_ids), trial_id))

    async def _emit(self, choice: _Choice, out: Delta) -> ChoiceDelta:
        if out.cached_tokens is not None and choice.offset == 0:
            choice.cached_tokens = out.cached_tokens
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
            matched = choice.stops.matched if choice.stops is not None else None
            choice.stop_reason = delta.stop_reason = matched or out.stop_reason
            choice.trace = self._trace(choice)
            metrics.observe_choice(choice.trace, len(choice.token_ids))
        return delta

    async def _trial(
        self, choice: _Choice, prefix: list[int], at: int, trial_id: str
    ) -> AsyncGenerator[_Item, None]:
        """A side probe's greedy answer, as one item once it has ended."""
        ids: list[int] = []
        logprobs: list[float] = []
        cached = 0
        async for d in self.engine.generate(prefix, self.trial_params, trial_id):
            ids += d.token_ids
            logprobs += [step[0][1] for step in d.logprobs or ()]
            cached = d.cached_tokens if d.cached_tokens is not None else cached
        eos = self.info.think.eos
        answer = [lp for tok, lp in zip(ids, logprobs, strict=False) if tok not in eos]
        text = self.info.tokenizer.decode(ids, skip_special_tokens=True)
        yield choice, trial_id, Trial(at, text, tuple(answer), len(ids), cached)

    async def _judge(self, choice: _Choice, trial: Trial, mux: _Mux) -> AsyncIterator[ChoiceDelta]:
        """Read a trial: release the held output and go on, or exit from its prefix."""
        side, spec = choice.side, self.side
        assert side is not None and spec is not None
        side.trying = False
        side.probe_tokens += trial.tokens
        metrics.SIDE_PROBES.inc()
        metrics.SIDE_PROBE_TOKENS.inc(trial.tokens)
        metrics.SIDE_PROBE_CACHED_TOKENS.inc(trial.cached_tokens)
        verdict = side.prober.judge(trial)
        detail = (("answer", verdict.answer), ("confidence", round(verdict.confidence, 6)),
                  ("agreeing", verdict.agreeing), ("probe_tokens", trial.tokens),
                  ("cached_tokens", trial.cached_tokens))  # fmt: skip
        name = "+".join(spec.controllers)
        side.events.append(ControlEvent(name, "trial", trial.at, (), detail, note=True))
        if verdict.exit_by is None:
            held, side.held = side.held, []
            for out in held:  # a cue among them may start the next trial: then hold the rest
                async for delta in self._take(choice, out, mux):
                    yield delta
            return
        # Exit at the trial's prefix: the output after it was never sent, and is dropped.
        await self.engine.abort([choice.engine_id])
        dropped = sum(len(d.token_ids) for d in side.held)
        side.held = []
        choice.past_events += [e for e in self.engine.events(choice.engine_id) if e.at < trial.at]
        close = list(spec.close)
        side.events.append(ControlEvent(verdict.exit_by, verdict.exit_by, trial.at, tuple(close),
                                        (*detail, ("discarded_tokens", dropped))))  # fmt: skip
        left = self.sampling["max_tokens"] - trial.at - len(close)
        text = self.info.tokenizer.decode(close, skip_special_tokens=True)
        choice.engine_id = f"{choice.request_id}+answer"
        yield await self._emit(choice, Delta(close, text, None if left > 0 else "length"))
        if left > 0:
            choice.offset = len(choice.token_ids)
            params = self._params({**self.sampling, "max_tokens": left}, choice,
                                  self._answer_spec(), choice.engine_id)  # fmt: skip
            prompt = [*self.prompt_ids, *choice.token_ids]
            mux.add(self._pump(choice, prompt, params, choice.engine_id))

    def _answer_spec(self) -> ControlSpec | None:
        """A continuation's controls: its prompt has closed thinking, so only top-H on the
        answer still applies."""
        spec = self.spec
        if spec is None or spec.top_h is None or spec.top_h.phase == "thinking":
            return None
        return ControlSpec(think=spec.think, top_h=spec.top_h)

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
                await self.engine.abort([choice.engine_id])
        if choice.tool_stream is not None:
            stream = choice.tool_stream
            delta.content, calls = stream.feed(delta.content, delta.content_ids, finish is not None)
            delta.tool_calls = calls or None
            if finish == "stop" and stream.called:  # vLLM's rule for a streamed "auto"
                finish = "tool_calls"
        elif self.reply.tools != "none":
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
        own = [e._replace(at=e.at + choice.offset) for e in self.engine.events(choice.engine_id)]
        side = choice.side.events if choice.side is not None else []
        events = sorted([*choice.past_events, *own, *side], key=lambda e: e.at)
        metrics.observe_probe(events)
        tracker = choice.tracker
        n_out = len(choice.token_ids)
        forced = [_forced_count(e, n_out) for e in events]
        names = self.spec.controller_names() if self.spec else []
        names += self.side.controllers if self.side else []
        reserved = any(e.reason == "answer_reserve" for e in events)
        if not reserved:
            # The answer reserve is a default safety net: named only where it acted.
            names = [n for n in names if n != "answer_reserve"]
        extra = {}
        if reserved and self.reserve is not None:
            extra["answer_reserve"] = AnswerReserveOut(tokens=self.reserve.tokens,
                                                       source=self.reserve.source)  # fmt: skip
        return ControlTrace(
            controllers=names,
            exit_reason=_exit_reason(choice, events),
            thinking_tokens=tracker.thinking_tokens if tracker else 0,
            forced_tokens=sum(forced),
            probe_tokens=choice.side.probe_tokens if choice.side is not None else 0,
            events=[_event_out(e, k) for e, k in zip(events, forced, strict=True)],
            **extra,
        )

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.tracker.thinking_tokens for c in self.choices if c.tracker)

    @property
    def cached_tokens(self) -> int:
        return sum(c.cached_tokens for c in self.choices)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices)


_DONE = object()  # a stream's end, in the mux's queue


class _Mux:
    """Items of several streams in the order they arrive, streams added on the way (side
    probes, continuations); the first error is raised."""

    def __init__(self, streams: list[AsyncGenerator[_Item, None]]) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._running = 0
        for stream in streams:
            self.add(stream)

    def add(self, stream: AsyncGenerator[_Item, None]) -> None:
        self._running += 1
        self._tasks.append(asyncio.create_task(self._drain(stream)))

    async def _drain(self, stream: AsyncGenerator[_Item, None]) -> None:
        try:
            async for item in stream:
                self._queue.put_nowait(item)
        except Exception as exc:  # the engine's error reaches the consumer
            self._queue.put_nowait(exc)
        self._queue.put_nowait(_DONE)

    def __aiter__(self) -> _Mux:
        return self

    async def __anext__(self) -> _Item:
        while self._running:
            item = await self._queue.get()
            if item is _DONE:
                self._running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                return item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _openai_finish(reason: str) -> str:
    """vLLM's finish reason as OpenAI's. An engine error, or an abort thinkctl did not ask
    for (its own aborts are never read back), is an error as vLLM reports it, not a stop."""
    if reason == "error":
        raise EngineError("Internal server error", 500, "generation_error")
    if reason == "abort":
        raise EngineError("The engine aborted the request.", 503, "aborted")
    return "length" if reason == "length" else "stop"


def _forced_count(event: ControlEvent, n_out: int) -> int:
    """Forced tokens that made it into the output (the request may end mid-sequence)."""
    return max(0, min(len(event.tokens), n_out - event.at))


def _event_out(e: ControlEvent, forced: int) -> ControlEventOut:
    detail = dict(e.detail)
    ints = {k: None if detail.get(k) is None else int(detail[k])
            for k in ("cue_index", "min_thinking", "max_thinking_tokens", "agreeing",
                      "probe_tokens", "cached_tokens", "discarded_tokens")}  # fmt: skip
    floats = ("score", "delta", "threshold", "max_accuracy_loss", "effort",
              "predicted_natural_tokens", "predicted_sufficient_tokens", "confidence")  # fmt: skip
    return ControlEventOut(
        controller=e.controller, reason=e.reason, at=e.at, forced_tokens=forced,
        answer=detail.get("answer"), **{k: detail.get(k) for k in floats}, **ints,
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
