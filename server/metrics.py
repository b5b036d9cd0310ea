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
EXITS = Counter("thinkctl_exits", "How thinking ended, per choice.", ["reason"])
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


def observe_choice(trace: ControlTrace, completion_tokens: int) -> None:
    THINKING_TOKENS.inc(trace.thinking_tokens)
    ANSWER_TOKENS.inc(max(0, completion_tokens - trace.thinking_tokens))
    EXITS.labels(trace.exit_reason).inc()
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
