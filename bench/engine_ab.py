"""Engine-side cost of thinkctl's control: plain vLLM and thinkctl's engine, paired.

    thinkctl bench engine                           # 12 rounds: ~11 minutes on 2 CPU cores
    thinkctl bench engine --rounds 2 --prompts 64   # a smoke run

Why beside `bench serve`: there, a round of plain vLLM alone ranges over a factor of two
on this 2-core machine (benchmark client, HTTP process and engine share the cores, and
vLLM's processes spin-wait for each other), which hides a 5 % cost. Everything the probe
adds runs in the engine's worker (the hooks inside the model's graph, the logits
processor, the probe), and the HTTP side is counted apart (`bench serve`'s CPU per
token). So this measures the engine alone, in one process, with no client and no HTTP:

- two `AsyncLLM` engines on the same model and engine arguments stay up for the whole
  run: `plain` is vLLM's, with nothing of thinkctl's; the other is built the way
  `thinkctl serve --probe` builds it (engine/launch.py: its logits processors,
  the worker extension, the probe's hooks), both in vLLM's default compiled mode;
- every round runs each arm once on the same prompts (a closed loop at a fixed
  concurrency, T = 0.6), in an order that rotates from round to round,
  with a pause between arms so that the engine just used stops spin-waiting first;
- arms: `plain`; `none` (thinkctl's engine, no control); `step_controllers` (a budget
  cap of 440 and TS at s = 1.01 on every request: the per-step path, lengths barely
  change); `lynx` (δ below the calibration floor: every cue scored, no exit).

Ratio = an arm's output tokens/s over plain's in the same round; the summary gives the
mean over rounds with a 95 % interval (t distribution over rounds) and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

from scipy import stats

from thinkctl.bench.serve import DELTA_NEVER, KV_CACHE_BYTES, MAX_NUM_SEQS, MAX_TOKENS
from thinkctl.testbed import tasks

PAUSE_S = 2.0  # vLLM's readers spin for 1 s after their last message (shm_broadcast)


def _specs(model: str, tok, probe: str) -> dict[str, dict | None]:
    """Each arm's control spec, as the server's request plan makes it from the arm's
    `thinkctl` options, in the form the HTTP side sends it to the engine."""
    from thinkctl.probes import model_folder
    from thinkctl.probes.artifact import ProbeArtifact
    from thinkctl.server.config import ServerConfig
    from thinkctl.server.model_info import ModelInfo
    from thinkctl.server.plan import plan
    from thinkctl.server.probe_config import ProbeConfig
    from thinkctl.server.protocol import ChatCompletionRequest

    probe_cfg = ProbeConfig.from_artifact(probe, ProbeArtifact.load(probe))
    config = ServerConfig(model_name=model, probe=probe_cfg)
    info = ModelInfo(model, model_folder.read(model, tok), max_model_len=MAX_TOKENS + 64)
    options = {
        "none": None,
        "step_controllers": {"max_thinking_tokens": 440, "ts": {"strength": 1.01}},
        "lynx": {"lynx": {"delta": DELTA_NEVER}},
    }
    specs: dict[str, dict | None] = {}
    for arm, opts in options.items():
        req = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "1"}],
                                    thinkctl=opts)  # fmt: skip
        spec = plan(req, info, config).spec
        specs[arm] = None if spec is None else spec.model_dump(mode="json")
    return specs


async def _arm(
    engine, prompts: list[list[int]], concurrency: int, spec: dict | None, collector=None
) -> dict:
    """One closed-loop run: output tokens, seconds, and (thinkctl's engine) how many cues
    the probe scored and how many of them exited, from the control events."""
    from vllm import SamplingParams

    from thinkctl.control.spec import ID_KEY, SPEC_KEY

    gate = asyncio.Semaphore(concurrency)
    tokens, scored, exits = 0, 0, 0

    async def one(i: int) -> None:
        nonlocal tokens, scored, exits
        rid = uuid.uuid4().hex
        wire = None if spec is None else {SPEC_KEY: spec, ID_KEY: rid}
        params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.6, extra_args=wire)
        async with gate:
            final = None
            async for out in engine.generate({"prompt_token_ids": prompts[i]}, params, rid):
                final = out
            tokens += len(final.outputs[0].token_ids)
        for event in collector.take(rid) if collector is not None else ():
            if event.controller == "lynx":  # a note when it let thinking go on
                scored, exits = scored + 1, exits + (not event.note)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(prompts))))
    seconds = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds,
            "cues_scored": scored, "lynx_exits": exits}  # fmt: skip


def summarise(rounds: list[dict[str, dict]]) -> dict:
    """Per arm: mean tok/s, and its ratio to plain's in the same round."""
    arms = list(rounds[0])
    out: dict = {"tok_s": {}, "ratio": {}, "events": {}}
    for arm in arms:
        out["tok_s"][arm] = [round(r[arm]["tok_s"]) for r in rounds]
        out["events"][arm] = {k: sum(r[arm].get(k, 0) for r in rounds)
                              for k in ("cues_scored", "lynx_exits")}  # fmt: skip
        if arm == "plain":
            continue
        ratios = [r[arm]["tok_s"] / r["plain"]["tok_s"] for r in rounds]
        mean = statistics.mean(ratios)
        half = None
        if len(ratios) > 1:
            sem = statistics.stdev(ratios) / len(ratios) ** 0.5
            half = float(stats.t.ppf(0.975, len(ratios) - 1) * sem)
        out["ratio"][arm] = {
            "mean": round(mean, 3),
            "ci95": None if half is None else [round(mean - half, 3), round(mean + half, 3)],
            "median": round(statistics.median(ratios), 3),
            "rounds": [round(x, 3) for x in ratios],
        }
    return out


def table(result: dict) -> str:
    lines = ["| arm | output tok/s, mean (rounds) | ratio to plain: mean [95 % CI] | median |",
             "|---|---|---|---|"]  # fmt: skip
    for arm, per_round in result["tok_s"].items():
        r = result["ratio"].get(arm)
        ratio = "—" if r is None else f"{r['mean']:.3f} {r['ci95'] or ''}"
        median = "—" if r is None else f"{r['median']:.3f}"
        mean = statistics.mean(per_round)
        lines.append(f"| {arm} | {mean:.0f} ({', '.join(map(str, per_round))}) | {ratio} "
                     f"| {median} |")  # fmt: skip
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    from thinkctl.engine.launch import start_engine
    from thinkctl.probes.artifact import ProbeArtifact

    model, probe = str(args.model), str(args.probe or Path(args.model) / "probe")
    tok = AutoTokenizer.from_pretrained(model)
    specs = _specs(model, tok, probe)
    prompts = tasks.prompt_ids(tok, tasks.held_out("test")[: args.prompts])
    engine_args = AsyncEngineArgs(model=model, kv_cache_memory_bytes=KV_CACHE_BYTES,
                                  max_num_seqs=MAX_NUM_SEQS)  # fmt: skip
    os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "0"  # as start_engine sets it for thinkctl's
    # Plain first: start_engine leaves the probe's environment set for later spawns.
    plain = AsyncLLM.from_engine_args(engine_args, usage_context=UsageContext.OPENAI_API_SERVER)
    layers = ProbeArtifact.load(probe).meta.features.layers
    thinkctl, collector = start_engine(engine_args, probe, layers)
    engines = {"plain": plain, "none": thinkctl, "step_controllers": thinkctl, "lynx": thinkctl}
    arms = [a for a in engines if a == "plain" or a in args.arms]
    try:
        events = {arm: None if arm == "plain" else collector for arm in arms}
        for arm in arms:  # warm-up: the first requests pay lazy start-up
            await _arm(engines[arm], prompts[:32], args.concurrency, specs.get(arm), events[arm])
        rounds = []
        for r in range(args.rounds):
            order = arms[r % len(arms) :] + arms[: r % len(arms)]
            result = {}
            for arm in order:
                await asyncio.sleep(PAUSE_S)
                result[arm] = await _arm(engines[arm], prompts, args.concurrency, specs.get(arm),
                                         events[arm])  # fmt: skip
            rounds.append({arm: result[arm] for arm in arms})
            done = ", ".join(f"{a} {result[a]['tok_s']:.0f}" for a in arms)
            print(f"round {r + 1}/{args.rounds}: {done} tok/s", flush=True)
    finally:
        plain.shutdown()
        thinkctl.shutdown()
        collector.close()
    return summarise(rounds)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="thinkctl bench engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="testbed/model", help="model folder")
    p.add_argument("--probe", type=Path, help="default: MODEL/probe")
    p.add_argument("--prompts", type=int, default=512, help="requests per arm and round")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--arms", nargs="+", default=["none", "step_controllers", "lynx"])
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    started = time.time()
    result = asyncio.run(run(args))
    result["run"] = {
        "command": "thinkctl bench engine " + " ".join(argv), "rounds": args.rounds,
        "prompts": args.prompts, "concurrency": args.concurrency, "max_tokens": MAX_TOKENS,
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - started, 1),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_ab.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "engine_ab.md").write_text(table(result) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
