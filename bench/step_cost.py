"""What thinkctl's per-step work costs the engine's worker, on hand-made tensors.

    python -m thinkctl.bench.step_cost                     # rows 32, 256, 1024; both testbeds
    python -m thinkctl.bench.step_cost --rows 32 --vocab 43  # one hand-made cell, testbed width

Times, per decode step of a whole batch (one thread, as vLLM's CPU worker runs), thinkctl's
logits processor (engine/logits_processor.py) driven as vLLM's runner drives it: every
row a request of one kind, one new token per row and step, a cue word every 16 tokens
(about the testbed's rate; rows start out of step with each other, as a live batch does).
Arms:
- `none`: rows that ask for no control (the processor's fixed cost);
- `budget_ts`: a budget cap and TS on every row (a shift on every row at every step);
- `lynx`: LYNX on every row, a logistic probe on the hidden state scoring every cue (never
  exiting), as wide as the model's shipped probe (testbed: 4 blocks of 128; testbed-r1: 4
  of 256, at Qwen's vocabulary of 151,936);
- `lynx_confidence`: the same probe also reading the sampled-token confidence
  (probes/confidence.py), which needs each row's log-softmax at every step;
- `confidence_feed`: that feed alone;
- `vllm_builtin`: the reference, vLLM's own min_tokens and logit_bias processors on the
  same rows (each row with a minimum it has not reached and one biased token);
- `per_row_budget_ts`: budget + TS the pre-batching way, one `ControlStack` per row
  (the specification the batched path is tested against).

Each figure is the mean over `--steps` steps after a warm-up, less the harness's own work
(appending each row's token, timed apart), and then the median over `--repeats` runs in
which the arms take turns (this machine's speed drifts by a third within an hour). The
hooks that capture hidden states run inside the model's forward pass and are not timed
here. `--out DIR` writes `step_cost.json` and `step_cost.md`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate
from vllm.v1.sample.logits_processor.builtin import (
    LogitBiasLogitsProcessor,
    MinTokensLogitsProcessor,
)

from thinkctl.control.batch import BatchControl
from thinkctl.control.spec import ID_KEY, SPEC_KEY, ControlSpec
from thinkctl.control.stack import apply_actions
from thinkctl.engine.logits_processor import ThinkctlLogitsProcessor
from thinkctl.probes import capture
from thinkctl.probes.confidence import ConfidenceFeed
from thinkctl.probes.probe import Probe

THINK, END, CUE, WORD = 1, 2, 3, 7
CUE_EVERY = 16
ROWS, MODELS = (32, 256, 1024), ("testbed", "testbed-r1")
WIDTH = 4 * 128  # hand-made cells: the testbed's probe, 4 blocks of 128 (plus confidence)
BIG_VOCAB_STEPS = 30  # a step of the confidence arms at vocabulary 151,936 takes ~0.1-1 s


class _Probe:
    """The engine side's probe (engine/probe_runtime.py): a logistic probe on random
    weights, thresholds no score reaches (every cue is scored, none exits)."""

    cue_ids = frozenset({CUE})

    def __init__(self, width: int, confidence: bool) -> None:
        self.confidence = confidence
        dim = width + int(confidence)
        rng = np.random.default_rng(0)
        self._probe = Probe(np.zeros(dim), np.ones(dim), [rng.normal(size=(dim, 1))],
                            [np.zeros(1)])  # fmt: skip

    def thresholds(self, delta: float) -> tuple[float, float]:
        return 1.0, 1.0

    def scorer(self):
        return lambda x: float(self.scores(x)[0])

    def scores(self, x: torch.Tensor) -> np.ndarray:
        return self._probe.prob(x.numpy(), np.float32)


class _Capture:
    """Stands in for the hooks' table (probes/capture.py): `width` features per row."""

    def __init__(self, rows: int, width: int) -> None:
        self._table = torch.randn(rows, width)

    def row(self, index: int) -> torch.Tensor:
        return self._table[index].clone()

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self._table.index_select(0, index)


def per_step_ms(step: Callable[[], None], steps: int) -> float:
    for _ in range(10):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def _outputs(rows: int) -> list[list[int]]:
    # Rows out of step: row i meets its cues i tokens earlier than row 0.
    return [[WORD] * (i % CUE_EVERY) for i in range(rows)]


def _advance(outputs: list[list[int]]) -> None:
    for out in outputs:
        out.append(CUE if len(out) % CUE_EVERY == CUE_EVERY - 1 else WORD)


def harness(rows: int, vocab: int) -> Callable[[], None]:
    outputs = _outputs(rows)
    return lambda: _advance(outputs)


def processor(rows: int, vocab: int, spec: ControlSpec | None, width: int = WIDTH,
              confidence: bool = False):  # fmt: skip
    """One step of thinkctl's logits processor over `rows` requests with control `spec`."""
    lp = ThinkctlLogitsProcessor(None, torch.device("cpu"), False)
    lp._sender, lp.batch = None, BatchControl(_Probe(width, confidence))  # no trace socket
    outputs = _outputs(rows)
    extra = {} if spec is None else {SPEC_KEY: spec.model_dump(mode="json")}
    added = [(i, SamplingParams(extra_args={**extra, ID_KEY: str(i)}), [THINK], outputs[i])
             for i in range(rows)]  # fmt: skip
    lp.update_state(BatchUpdate(batch_size=rows, removed=[], added=added, moved=[]))
    logits = torch.randn(rows, vocab)

    def step() -> None:
        _advance(outputs)
        lp.update_state(None)
        lp.apply(logits)

    return step


def per_row(rows: int, vocab: int, spec: ControlSpec) -> Callable[[], None]:
    """The specification's way: each row's `ControlStack.step`, then one `apply_actions`."""
    outputs, stacks = _outputs(rows), [spec.build([THINK]) for _ in range(rows)]
    logits = torch.randn(rows, vocab)

    def step() -> None:
        _advance(outputs)
        views = logits.unbind(0)
        actions = [(i, s.step(outputs[i], views[i])) for i, s in enumerate(stacks)]
        apply_actions([(i, a) for i, a in actions if not a.is_empty], logits)

    return step


def vllm_builtin(rows: int, vocab: int) -> Callable[[], None]:
    """vLLM's min_tokens and logit_bias processors on every row."""
    procs = [MinTokensLogitsProcessor(None, torch.device("cpu"), False),
             LogitBiasLogitsProcessor(None, torch.device("cpu"), False)]  # fmt: skip
    outputs = _outputs(rows)
    added = []
    for i in range(rows):
        p = SamplingParams(max_tokens=10**7, min_tokens=10**6, logit_bias={END: 0.5},
                           stop_token_ids=[END])  # fmt: skip
        added.append((i, p, [THINK], outputs[i]))
    for proc in procs:
        proc.update_state(BatchUpdate(batch_size=rows, removed=[], added=added, moved=[]))
    logits = torch.randn(rows, vocab)

    def step() -> None:
        _advance(outputs)
        for proc in procs:
            proc.update_state(None)
            proc.apply(logits)

    return step


def confidence_feed(rows: int, vocab: int) -> Callable[[], None]:
    feed, logits, outputs = ConfidenceFeed(), torch.randn(rows, vocab), _outputs(rows)
    every = np.arange(rows)
    for i in every:
        feed.reset(int(i))

    def step() -> None:
        _advance(outputs)
        last = np.array([o[-1] for o in outputs])
        feed.step(every, np.array([len(o) for o in outputs]), last, last == CUE, logits)

    return step


def shape(model: str) -> tuple[int, int]:
    """(vocabulary, probe width) of embedded model `model`'s shipped LYNX probe."""
    from thinkctl.models.resolve import resolve
    from thinkctl.probes.artifact import ProbeArtifact

    meta = ProbeArtifact.load(resolve(model).folder / "probe").meta
    return meta.model.vocab_size, len(meta.features.layers) * meta.model.hidden_size


def measure(rows: int, vocab: int, steps: int, repeats: int = 1, width: int = WIDTH,
            model: str = "") -> dict:  # fmt: skip
    lynx = ControlSpec(think=(THINK, END), lynx={"delta": 0.05, "close": [END]})
    budget_ts = ControlSpec(think=(THINK, END), budget={"max": 10**6, "close": [END]},
                            ts={"strength": 1.01})  # fmt: skip
    arms = {  # built one at a time: what one arm leaves alive must not slow the next
        "none": lambda: processor(rows, vocab, None),
        "budget_ts": lambda: processor(rows, vocab, budget_ts),
        "lynx": lambda: processor(rows, vocab, lynx, width),
        "lynx_confidence": lambda: processor(rows, vocab, lynx, width, confidence=True),
        "confidence_feed": lambda: confidence_feed(rows, vocab),
        "vllm_builtin": lambda: vllm_builtin(rows, vocab),
        "per_row_budget_ts": lambda: per_row(rows, vocab, budget_ts),
    }
    saved, capture._CAPTURE = capture._CAPTURE, _Capture(rows, width)
    times: dict[str, list[float]] = {name: [] for name in arms}
    bases = []
    try:
        for _ in range(repeats):  # arms interleaved: the machine's drift hits them alike
            bases.append(per_step_ms(harness(rows, vocab), steps))
            for name, make in arms.items():
                gc.collect()
                times[name].append(max(per_step_ms(make(), steps) - bases[-1], 0.0))
    finally:
        capture._CAPTURE = saved
    out = {"model": model, "rows": rows, "vocab": vocab, "probe_width": width, "steps": steps,
           "repeats": repeats, "harness_ms": round(float(np.median(bases)), 4)}  # fmt: skip
    for name, ms in times.items():
        out[f"{name}_ms"] = round(float(np.median(ms)), 4)
    return out


def _table(cells: list[dict]) -> str:
    names = [k for k in cells[0] if k.endswith("_ms") and k != "harness_ms"]
    head = "| model | rows | vocab | probe | " + " | ".join(n.removesuffix("_ms") for n in names)
    lines = [head + " |", "|" + "---|" * (len(names) + 4)]
    for c in cells:
        lines.append(f"| {c['model'] or 'hand-made'} | {c['rows']} | {c['vocab']:,} | "
                     f"{c['probe_width']} | "
                     + " | ".join(f"{c[n]:.3f}" for n in names) + " |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m thinkctl.bench.step_cost", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help="batch sizes")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help="embedded models whose vocabulary and probe width to use")  # fmt: skip
    p.add_argument(
        "--vocab",
        type=int,
        nargs="+",
        help=f"hand-made cells instead: logits per row, probe width {WIDTH}",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=200,
        help=f"timed steps per arm (at most {BIG_VOCAB_STEPS} above 10,000 logits)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of every arm, interleaved; the table gives each arm's median",
    )
    p.add_argument("--out", type=Path, help="write step_cost.json and step_cost.md here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    shapes = ([("", v, WIDTH) for v in args.vocab] if args.vocab
              else [(m, *shape(m)) for m in args.models])  # fmt: skip
    cells = []
    for model, vocab, width in shapes:
        for rows in args.rows:
            steps = args.steps if vocab <= 10_000 else min(args.steps, BIG_VOCAB_STEPS)
            cells.append(measure(rows, vocab, steps, args.repeats, width, model))
            print(json.dumps(cells[-1]), flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        run = {"command": "python -m thinkctl.bench.step_cost " + " ".join(argv or sys.argv[1:]),
               "machine": platform.processor() or platform.machine(), "threads": 1,
               "date": time.strftime("%Y-%m-%d"), "cells": cells}  # fmt: skip
        (args.out / "step_cost.json").write_text(json.dumps(run, indent=1) + "\n")
        (args.out / "step_cost.md").write_text(
            f"`{run['command'].strip()}` on {run['date']}, one thread; ms per decode step of "
            "the whole batch, the harness's token appends subtracted.\n\n" + _table(cells) + "\n"
        )


if __name__ == "__main__":
    main()
