"""What thinkctl's per-step work costs the engine's worker, on hand-made tensors.

    python -m bench.step_cost                 # a batch of 32 rows, the testbed's vocabulary
    python -m bench.step_cost --rows 64 --vocab 151936

Times, per decode step of a whole batch (one thread, as vLLM's CPU worker runs): the
confidence feed of a LYNX probe (probes/confidence.py, a cue every 50 tokens) and one
`ControlStack.step` per row at a step that is no cue, for a LYNX request and for a budget
+ TS request (server/controllers/). The hidden-state
hooks need a running engine and are not timed here. The serving benchmark (bench/serve.py)
measures the end-to-end effect; this isolates thinkctl's share of a step from the noise
of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from probes.confidence import ConfidenceFeed, SampledConfidence
from server.controllers.spec import ControlSpec

THINK, END, CUE, WORD = 1, 2, 3, 7


class _Probe:
    """The engine side's probe as the stack sees it: thresholds no score reaches."""

    cue_ids = frozenset({CUE})

    def thresholds(self, delta: float) -> tuple[float, float]:
        return 1.0, 0.0

    def scorer(self):
        return lambda features: 0.5


def per_step_ms(step: Callable[[], None], steps: int) -> float:
    for _ in range(20):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def confidence_feed(rows: int, vocab: int) -> Callable[[], None]:
    feed, logits = ConfidenceFeed(), torch.randn(rows, vocab)
    trackers = [SampledConfidence(frozenset({CUE})) for _ in range(rows)]
    outputs: list[list[int]] = [[] for _ in range(rows)]

    def step() -> None:
        for out in outputs:  # a cue every 50 tokens, as on the testbed
            out.append(CUE if len(out) % 50 == 49 else WORD)
        feed.step([(i, outputs[i], trackers[i]) for i in range(rows)], logits)

    return step


def stacks(rows: int, vocab: int, spec: ControlSpec) -> Callable[[], None]:
    logits = torch.randn(rows, vocab)
    built = [spec.build([THINK], _Probe()) for _ in range(rows)]
    outputs: list[list[int]] = [[] for _ in range(rows)]

    def step() -> None:
        for i, out in enumerate(outputs):
            out.append(WORD)
            built[i].step(out, logits[i], None)

    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.step_cost", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--rows", type=int, default=32, help="requests in the batch")
    p.add_argument("--vocab", type=int, default=43, help="logits per row (testbed: 43)")
    p.add_argument("--steps", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lynx = ControlSpec(think=(THINK, END), lynx={"delta": 0.05, "close": [END]})
    budget_ts = ControlSpec(think=(THINK, END), budget={"max": 10**6, "close": [END]},
                            ts={"strength": 1.01})  # fmt: skip
    out = {
        "rows": args.rows, "vocab": args.vocab,
        "confidence_feed_ms": per_step_ms(confidence_feed(args.rows, args.vocab), args.steps),
        "stack_lynx_ms": per_step_ms(stacks(args.rows, args.vocab, lynx), args.steps),
        "stack_budget_ts_ms": per_step_ms(stacks(args.rows, args.vocab, budget_ts), args.steps),
    }  # fmt: skip
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
