"""Start vLLM's `AsyncLLM` with thinkctl's logits processor and worker extension."""

from __future__ import annotations

import dataclasses
import os

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM

from server.engine.probe_runtime import PROBE_ENV
from server.engine.trace_channel import ADDR_ENV, EventCollector

LOGITS_PROCESSORS = (
    "server.engine.logits_processor:ThinkctlLogitsProcessor",
    "server.engine.logits_processor:ThinkctlTopHProcessor",
)
# A dotted qualname: vLLM resolves worker extensions differently from logits processors.
WORKER_EXTENSION = "server.engine.worker_ext.ThinkctlWorkerExtension"


def start_engine(
    engine_args: AsyncEngineArgs, probe_dir: str | None = None
) -> tuple[AsyncLLM, EventCollector]:
    """Create the engine and the collector of its control events.

    Environment set here is inherited by the engine's spawned processes:
    - VLLM_USE_V2_MODEL_RUNNER=0: GPU builds otherwise pick model runner v2, whose
      logits-processor API differs from the v1 one that CPU builds (and CI) run; pinning
      v1 everywhere means what CI tests is what GPUs run.
    - the control-event channel's address (trace_channel.py);
    - the LYNX probe's folder, which the logits processor loads (probe_runtime.py).
    """
    os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "0"
    if probe_dir:
        os.environ[PROBE_ENV] = probe_dir
    else:
        os.environ.pop(PROBE_ENV, None)
    collector = EventCollector()
    os.environ[ADDR_ENV] = collector.addr
    processors = list(engine_args.logits_processors or [])
    processors += [p for p in LOGITS_PROCESSORS if p not in processors]
    engine_args = dataclasses.replace(
        engine_args,
        logits_processors=processors,
        worker_extension_cls=WORKER_EXTENSION,
    )
    try:
        engine = AsyncLLM.from_engine_args(
            engine_args, usage_context=UsageContext.OPENAI_API_SERVER
        )
    except BaseException:
        collector.close()
        raise
    return engine, collector


async def install_capture(engine: AsyncLLM, layers: list[int]) -> None:
    """Hook the probe's layers in every worker (probes/capture.py)."""
    results = await engine.collective_rpc("thinkctl_install_capture", args=(list(layers),))
    if not all(results):
        raise RuntimeError("a worker did not install the probe's hooks")
