"""Start vLLM's `AsyncLLM` with thinkctl's logits processor and worker extension."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Sequence

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM

from thinkctl.engine import runner as model_runner
from thinkctl.engine.probe_runtime import LENGTH_ENV, PROBE_ENV
from thinkctl.engine.trace_channel import ADDR_ENV, EventCollector
from thinkctl.probes import capture

# A dotted qualname: vLLM resolves worker extensions differently from logits processors.
# Named, not imported: importing engine.worker patches vLLM's worker classes.
WORKER_EXTENSION = "thinkctl.engine.worker.ThinkctlWorkerExtension"
# vLLM's list of extra variable prefixes its Ray executor copies to the workers.
RAY_PREFIXES_ENV = "VLLM_RAY_EXTRA_ENV_VAR_PREFIXES_TO_COPY"


def start_engine(
    engine_args: AsyncEngineArgs,
    probe_dir: str | None = None,
    layers: Sequence[int] = (),
    length_dir: str | None = None,
    runner: model_runner.Runner | None = None,
) -> tuple[AsyncLLM, EventCollector]:
    """Create the engine and the collector of its control events.

    Environment set here is inherited by the engine's spawned processes:
    - the model runner's (engine/runner.py: V1 unless V2 is asked for), with that
      runner's logits processors;
    - the control-event channel's address (trace_channel.py);
    - the LYNX probe's and the length predictor's folders, which the logits processor
      loads (probe_runtime.py), and the `layers` they read, which the worker hooks as soon
      as the model has loaded, before vLLM compiles it (probes/capture.py).
    """
    chosen = model_runner.choose(runner)
    model_runner.refuse_unsupported(chosen, engine_args.speculative_config is not None,
                                    bool(layers))  # fmt: skip
    os.environ.update(model_runner.environment(chosen))
    for key in (PROBE_ENV, LENGTH_ENV, capture.LAYERS_ENV):
        os.environ.pop(key, None)
    if layers:
        os.environ.update(capture.environment(layers))
    for key, folder in ((PROBE_ENV, probe_dir), (LENGTH_ENV, length_dir)):
        if folder:
            os.environ[key] = folder
    collector = EventCollector(_trace_host(engine_args))
    os.environ[ADDR_ENV] = collector.addr
    processors = list(engine_args.logits_processors or [])
    processors += [p for p in model_runner.logits_processors(chosen) if p not in processors]
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


def _trace_host(engine_args: AsyncEngineArgs) -> str | None:
    """Where the control-event channel listens: None (an IPC path) when every rank runs
    on this machine; this machine's address for Ray or several nodes, whose workers do
    not inherit this process's environment: Ray is told to copy thinkctl's variables."""
    if engine_args.distributed_executor_backend != "ray" and (engine_args.nnodes or 1) <= 1:
        return None
    from vllm.utils.network_utils import get_ip

    extra = os.environ.get(RAY_PREFIXES_ENV, "")
    if "THINKCTL_" not in extra.split(","):
        os.environ[RAY_PREFIXES_ENV] = ",".join(p for p in (extra, "THINKCTL_") if p)
    return get_ip()


async def check_capture(engine: AsyncLLM) -> None:
    """Serve one tiny request and check that every worker's hooks wrote its features, in
    whatever mode the engine runs (eager, compiled, CUDA graphs; probes/capture.py)."""
    installed = await engine.collective_rpc("thinkctl_capture_reset")
    params = SamplingParams(max_tokens=capture.CHECK_MAX_TOKENS, temperature=0.0)
    prompt = {"prompt_token_ids": capture.CHECK_PROMPT_IDS}
    async for _ in engine.generate(prompt, params, uuid.uuid4().hex):
        pass
    capture.require_written(installed, await engine.collective_rpc("thinkctl_capture_written"))
