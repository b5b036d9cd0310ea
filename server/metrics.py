"""thinkctl's Prometheus metrics, beside vLLM's own `vllm:*` metrics in the same registry."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from server.controllers.stack import ControlEvent
from server.protocol import ControlTrace

REQUESTS = Counter("thinkctl_requests", "Chat completion requests by outcome.", ["status"])
for _status in ("ok", "error", "aborted"):  # export zeros, so rates work from the start
    REQUESTS.labels(_status)
THINKING_TOKENS = Counter("thinkctl_thinking_tokens", "Tokens generated inside thinking blocks.")
ANSWER_TOKENS = Counter("thinkctl_answer_tokens", "Tokens generated outside thinking blocks.")
# `controllers`: the request's active controllers, sorted and comma-joined ("none" without),
# so a natural exit under a budget is told from one with no control at all.
EXITS = Counter("thinkctl_exits", "How thinking ended, per choice.", ["reason", "controllers"])
FORCED_TOKENS = Counter("thinkctl_forced_tokens", "Tokens forced by controllers.", ["controller"])
PROBE_EVALUATIONS = Counter(
    "thinkctl_probe_evaluations", "LYNX probe evaluations at cue tokens.", ["decision"]
)
for _decision in ("exit", "continue"):
    PROBE_EVALUATIONS.labels(_decision)
PROBE_LATENCY = Histogram(
    "thinkctl_probe_latency_seconds",
    "Time to score one cue with the LYNX probe, inside the engine's worker.",
    buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1),
)
LATENCY = Histogram(
    "thinkctl_request_latency_seconds",
    "End-to-end latency of finished chat completions.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300),
)
TOKEN_BUCKETS = (0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
CHOICE_THINKING_TOKENS = Histogram(
    "thinkctl_choice_thinking_tokens", "Thinking tokens of each finished choice.",
    buckets=TOKEN_BUCKETS,
)  # fmt: skip
CHOICE_ANSWER_TOKENS = Histogram(
    "thinkctl_choice_answer_tokens", "Answer tokens of each finished choice.",
    buckets=TOKEN_BUCKETS,
)  # fmt: skip
# Per choice, from the request's arrival (queueing included): the first token of any kind,
# and the first answer text, which is what a reasoning model's user waits for.
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
FIRST_TOKEN = Histogram(
    "thinkctl_time_to_first_token_seconds", "Time to a choice's first generated token.",
    buckets=WAIT_BUCKETS,
)  # fmt: skip
FIRST_ANSWER_TOKEN = Histogram(
    "thinkctl_time_to_first_answer_token_seconds",
    "Time to a choice's first answer text (after its thinking).",
    buckets=WAIT_BUCKETS,
)


def observe_choice(trace: ControlTrace, completion_tokens: int) -> None:
    answer_tokens = max(0, completion_tokens - trace.thinking_tokens)
    THINKING_TOKENS.inc(trace.thinking_tokens)
    ANSWER_TOKENS.inc(answer_tokens)
    CHOICE_THINKING_TOKENS.observe(trace.thinking_tokens)
    CHOICE_ANSWER_TOKENS.observe(answer_tokens)
    EXITS.labels(trace.exit_reason, ",".join(sorted(trace.controllers)) or "none").inc()
    for event in trace.events:
        FORCED_TOKENS.labels(event.controller).inc(event.forced_tokens)


def observe_probe(events: list[ControlEvent]) -> None:
    """LYNX's scored cues: each carries its decision and the worker-side scoring time."""
    for event in events:
        if event.controller != "lynx":
            continue
        detail = dict(event.detail)
        PROBE_EVALUATIONS.labels("continue" if event.note else "exit").inc()
        if "latency_s" in detail:
            PROBE_LATENCY.observe(detail["latency_s"])
