"""What thinkctl's per-step work costs the engine's worker, on hand-made tensors.

    python -m bench.step_cost                 # a batch of 32 rows, the testbed's vocabulary
    python -m bench.step_cost --rows 64 --vocab 151936

Times, per decode step of a whole batch (one thread, as vLLM's CPU worker runs), thinkctl's
logits processor (engine/logits_processor.py) driven as vLLM's runner drives it:
every row a request of one kind, one new token per row and step, a cue word every 16
tokens (about the testbed's rate). Kinds: no control (the processor's fixed cost), LYNX
(the confidence feed, the control stacks, and at cues the features and a logistic probe
of the testbed's size), and budget + TS (a shift on every row at every step). Also the
confidence feed alone (probes/confidence.py), whose log-softmax grows with the
vocabulary. The hooks that capture hidden states run inside the model's forward pass and
are not timed here. The serving benchmark (bench/serve.py) measures the end-to-end
effect; this isolates thinkctl's share of a step from the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate

from engine.logits_processor import ThinkctlLogitsProcessor
from probes import capture
from probes.confidence import ConfidenceFeed, SampledConfidence
from probes.probe import Probe
from server.controllers.spec import ID_KEY, SPEC_KEY, ControlSpec

THINK, END, CUE, WORD = 1, 2, 3, 7
CUE_EVERY = 16
FEATURES = 4 * 128 + 1  # the testbed's probe: 4 blocks of 128, plus the confidence value


class _Probe:
    """The engine side's probe (engine/probe_runtime.py): a logistic probe on random
    weights, thresholds no score reaches (every cue is scored, none exits)."""

    cue_ids = frozenset({CUE})
    confidence = True

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self._probe = Probe(np.zeros(FEATURES), np.ones(FEATURES),
                            [rng.normal(size=(FEATURES, 1))], [np.zeros(1)])  # fmt: skip

    def thresholds(self, delta: float) -> tuple[float, float]:
        return 1.0, 1.0

    def scorer(self):
        return lambda x: float(self._probe.prob(x.numpy().astype(np.float64))[0])


class _Capture:
    """Stands in for the hooks' buffers (probes/capture.py)."""

    def __init__(self, rows: int) -> None:
        self._buffers = [torch.randn(rows, 128) for _ in range(4)]

    def row(self, index: int) -> torch.Tensor:
        return torch.cat([b[index] for b in self._buffers])


def per_step_ms(step: Callable[[], None], steps: int) -> float:
    for _ in range(20):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def _next_token(out: list[int]) -> int:
    return CUE if len(out) % CUE_EVERY == CUE_EVERY - 1 else WORD


def processor(rows: int, vocab: int, spec: ControlSpec | None) -> Callable[[], None]:
    """One step of the logits processor over `rows` requests with control `spec`."""
    lp = ThinkctlLogitsProcessor(None, torch.device("cpu"), False)
    lp._sender, lp._probe = None, _Probe()  # no trace socket; the stand-in probe
    outputs: list[list[int]] = [[] for _ in range(rows)]
    extra = {} if spec is None else {SPEC_KEY: spec.model_dump(mode="json")}
    added = [(i, SamplingParams(extra_args={**extra, ID_KEY: str(i)}), [THINK], outputs[i])
             for i in range(rows)]  # fmt: skip
    lp.update_state(BatchUpdate(batch_size=rows, removed=[], added=added, moved=[]))
    logits = torch.randn(rows, vocab)

    def step() -> None:
        for out in outputs:
            out.append(_next_token(out))
        lp.update_state(None)
        lp.apply(logits)

    return step


def confidence_feed(rows: int, vocab: int) -> Callable[[], None]:
    feed, logits = ConfidenceFeed(), torch.randn(rows, vocab)
    trackers = [SampledConfidence(frozenset({CUE})) for _ in range(rows)]
    outputs: list[list[int]] = [[] for _ in range(rows)]

    def step() -> None:
        for out in outputs:
            out.append(_next_token(out))
        feed.step([(i, outputs[i], trackers[i]) for i in range(rows)], logits)

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
    saved, capture._CAPTURE = capture._CAPTURE, _Capture(args.rows)
    try:
        out = {
            "rows": args.rows, "vocab": args.vocab,
            "processor_none_ms": per_step_ms(processor(args.rows, args.vocab, None), args.steps),
            "processor_lynx_ms": per_step_ms(processor(args.rows, args.vocab, lynx), args.steps),
            "processor_budget_ts_ms": per_step_ms(processor(args.rows, args.vocab, budget_ts),
                                                  args.steps),
            "confidence_feed_ms": per_step_ms(confidence_feed(args.rows, args.vocab),
                                              args.steps),
        }  # fmt: skip
    finally:
        capture._CAPTURE = saved
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
