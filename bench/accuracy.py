"""Accuracy vs thinking tokens: a grid of control settings over HTTP, plus the oracle.

    thinkctl bench accuracy --max-tokens 450       # testbed test split, starts its own server
    thinkctl bench accuracy --n 50 --out /tmp/b    # a smoke-sized run
    thinkctl bench accuracy --model DIR --data questions.jsonl --max-tokens 8192
    thinkctl bench accuracy --base-url http://127.0.0.1:8000 --settings none budget:40

Each request goes through the official `openai` client with its own seed. Rows are
appended to results.jsonl as they finish, and a rerun skips the rows already there, so
an interrupted run loses nothing. Settings are named `none`, `budget:N`, `ts:S`,
`effort:LEVEL`, `effort:E` (numeric; the global cap), `effort_query:LEVEL` and
`effort_query:E` (per-query budgets from the length predictor), `top_h:A`, `deer:λ`
(DEER: trial answers at cues, exit at confidence λ) and `dynasor:KxM` (Dynasor: a trial
every K thinking tokens, exit when M agree), combined with `+` (e.g. `budget:60+ts:100`).
Side-probe settings also record `probe_tokens`, the tokens their trials generated, and
the run draws `pareto_total.png` on thinking + probe tokens beside `pareto.png`.

The oracle frontier: for each trace of the `none` setting, the earliest cue whose forced
exit (probes/forced_exit.py) answers correctly, the best any exit policy could do
on that trace; traces without one keep their full length and their own correctness.

LYNX settings: `lynx:D` (delta D), `lynx_risk:E` (at most E accuracy lost against natural
thinking, the probe's answer-level guarantee) and `lynx_effort:LEVEL` (effort through the
probe's calibrated table); the server then serves the probe it finds in the model's
calibration folder, or `--probe`; without such settings it runs with `--no-probe`.
`effort:*` settings always mean the global budget table (they send `"lynx": false` and
`"effort_policy": "global"`), so the same name means the same thing on any server.
`effort_combined:LEVEL` sends the effort alone, the server's default: effort as one
policy of the probe's exit and the per-query budget (calibration/combined.py); the run
stops unless the server says that is its policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

import openai
from tqdm import tqdm

from thinkctl.bench import report
from thinkctl.bench.server_process import start_server, stop_server
from thinkctl.calibration import datasets
from thinkctl.calibration.datasets import Dataset
from thinkctl.models import embedded
from thinkctl.models.resolve import resolve
from thinkctl.probes import model_folder
from thinkctl.probes.cues import cue_token_ids_of
from thinkctl.probes.forced_exit import answer_ids, forced_exits

BOXED = datasets.answer_format("boxed")[0]
# The default grid was chosen on the testbed, whose natural thinking averages this many
# tokens; token-valued settings (budgets, Dynasor's interval) scale with a model's own.
REFERENCE_NATURAL_TOKENS = 136.6
BUDGETS, DYNASOR_EVERY = (15, 30, 45, 60, 90, 120), (8, 16, 32)
DEFAULT_SETTINGS = (
    "none",
    *(f"budget:{b}" for b in BUDGETS),
    *(f"ts:{s:g}" for s in (30, 100, 1000, 10000)),
    *(f"effort:{level}" for level in ("minimal", "low", "medium", "high")),
    *(f"effort:{e}" for e in (0.3, 0.5, 0.7)),
    *(f"effort_query:{x}" for x in (0.3, 0.5, 0.7, "minimal", "low", "medium", "high")),
    *(f"lynx:{d:g}" for d in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)),
    *(f"lynx_effort:{level}" for level in ("low", "medium", "high")),
    *(f"lynx_risk:{e:g}" for e in (0.005, 0.01, 0.02)),
    *(f"deer:{t:g}" for t in (0.9, 0.999, 0.9999, 0.99999, 0.999999)),
    *(f"dynasor:{k}x{m}" for k in DYNASOR_EVERY for m in (2, 3)),
)


def default_settings(natural: float | None) -> list[str]:
    """The default grid for a model that thinks `natural` tokens on average (None: the
    testbed's grid as it is)."""
    if natural is None:
        return list(DEFAULT_SETTINGS)
    scale = natural / REFERENCE_NATURAL_TOKENS
    tokens = {f"budget:{b}": f"budget:{max(1, round(b * scale))}" for b in BUDGETS}
    tokens |= {f"dynasor:{k}x{m}": f"dynasor:{max(1, round(k * scale))}x{m}"
               for k in DYNASOR_EVERY for m in (2, 3)}  # fmt: skip
    return [tokens.get(s, s) for s in DEFAULT_SETTINGS]


def natural_thinking(model: str) -> float | None:
    """The model's mean natural thinking length, from its effort calibration."""
    from thinkctl.probes import effort_table

    table = effort_table.read(model_folder.calibration_dir(model))
    return None if table is None else table.get("natural_mean_thinking_tokens")


# The testbed's committed runs cut every trace at 450 tokens (`--max-tokens 450`); without
# the flag no max_tokens is sent and the server allows what the model's context leaves.


def _mean_thinking(results: Path, setting: str) -> float:
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    tokens = [r["thinking_tokens"] for r in rows if r["setting"] == setting]
    return sum(tokens) / len(tokens)


def _fields(setting: str) -> dict:
    """The setting's request fields, without the server's answer reserve: each setting is
    measured alone, and --max-tokens is the bench's own cut (the committed runs predate it)."""
    body = parse_setting(setting)
    body["thinkctl"] = {**body.get("thinkctl", {}), "answer_reserve": 0}
    return body


def _require_combined(url: str, api_key: str | None) -> None:
    """`effort_combined` measures the server's default effort: refuse a server whose default
    is another policy (no combined points for its probe), rather than mislabel rows."""
    import httpx

    from thinkctl.errors import CommandError

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    card = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["data"][0]
    policy = card["thinkctl"]["effort"]["policy"]
    if policy != "combined":
        raise CommandError(f"effort_combined settings need a server whose effort is combined; "
                         f"this one's is {policy!r} (calibrate the probe and the length "
                         "predictor in one run)")  # fmt: skip


def parse_setting(setting: str) -> dict:
    """`budget:60+ts:100` -> the request fields that ask for it."""
    body: dict = {}
    ctl: dict = {}
    for part in setting.split("+"):
        kind, _, value = part.partition(":")
        if kind == "none":
            continue
        if kind == "budget":
            ctl["max_thinking_tokens"] = int(value)
        elif kind == "ts":
            ctl["ts"] = {"strength": float(value)}
        elif kind == "top_h":
            ctl["top_h"] = {"alpha": float(value)}
        elif kind in ("effort", "effort_query", "lynx_effort", "effort_combined"):
            try:
                ctl["effort"] = float(value)
            except ValueError:
                body["reasoning_effort"] = value
            if kind == "effort_combined":  # the server's default: nothing overrides it
                continue
            ctl["lynx"] = kind == "lynx_effort"
            if kind != "lynx_effort":
                ctl["effort_policy"] = "query" if kind == "effort_query" else "global"
        elif kind == "lynx":
            ctl["lynx"] = {"delta": float(value)}
        elif kind == "lynx_risk":
            ctl["lynx"] = {"max_accuracy_loss": float(value)}
        elif kind == "deer":
            ctl["deer"] = {"threshold": float(value)}
        elif kind == "dynasor":
            every, _, agree = value.partition("x")
            ctl["dynasor"] = {"every": int(every), "agree": int(agree)}
        else:
            raise ValueError(f"unknown setting {part!r}")
    if ctl:
        body["thinkctl"] = ctl
    return body


def _done_keys(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["setting"], r["problem"], r["sample"]) for r in rows}


async def run_grid(
    base_url: str, api_key: str, model: str, settings: list[str], data: Dataset,
    samples: int, temperature: float, results: Path, concurrency: int,
    max_tokens: int | None = None,
) -> None:  # fmt: skip
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=2,
                                timeout=600)  # fmt: skip
    done = _done_keys(results)
    jobs = [
        (s, i, k) for s in settings for i in range(len(data.questions)) for k in range(samples)
        if (s, i, k) not in done
    ]  # fmt: skip
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(jobs), desc="requests", unit="req")
    with results.open("a") as out:

        async def one(setting: str, i: int, k: int) -> None:
            n = len(data.questions)
            async with gate:
                started = time.monotonic()
                r = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": data.questions[i]}],
                    max_tokens=max_tokens, temperature=temperature, seed=k * n + i,
                    extra_body={**_fields(setting), "return_token_ids": setting == "none"},
                )  # fmt: skip
            choice = r.choices[0]
            trace = choice.model_extra["thinkctl"]
            row = {
                "setting": setting, "problem": i, "sample": k,
                "correct": bool(data.check(i, choice.message.content or "")),
                # The reply's last \boxed{} (None: none): against `none` on the same seed,
                # whether control changed the answer (report.summarise).
                "answer": BOXED(choice.message.content or ""),
                "thinking_tokens": trace["thinking_tokens"],
                "answer_tokens": r.usage.completion_tokens - trace["thinking_tokens"],
                "exit_reason": trace["exit_reason"],
                "probe_tokens": trace.get("probe_tokens", 0),
                "latency_s": round(time.monotonic() - started, 3),
            }  # fmt: skip
            if setting == "none":
                row["prompt_ids"] = r.model_extra["prompt_token_ids"]
                row["output_ids"] = choice.model_extra["token_ids"]
            out.write(json.dumps(row) + "\n")
            out.flush()
            bar.update()

        await asyncio.gather(*(one(*job) for job in jobs))
    bar.close()


def think_tokens(model_dir: Path, tokenizer=None) -> model_folder.ThinkTokens:
    """The folder's conventions (probes/model_folder.py): the oracle's forced exits close
    thinking exactly as the server's do."""
    return model_folder.read(model_dir, tokenizer)


def oracle_rows(model_dir: Path, results: Path, data: Dataset) -> list[dict]:
    """Earliest correct forced exit of every `none` trace, through an offline vLLM engine."""
    from thinkctl.engine.offline import OfflineEngine

    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    natural = [r for r in rows if r["setting"] == "none"]
    engine = OfflineEngine(str(model_dir), seed=0)
    tok = engine.tokenizer
    think = think_tokens(model_dir, tok)
    close = think.close()
    exits = forced_exits([r["prompt_ids"] for r in natural], [r["output_ids"] for r in natural],
                         cue_token_ids_of(tok), close)  # fmt: skip
    answers = engine.greedy_ids([e.prompt_ids for e in exits])
    earliest: dict[int, int] = {}
    for e, ans in zip(exits, answers, strict=True):
        q = natural[e.trace]["problem"]
        if e.trace not in earliest and data.check(q, tok.decode(answer_ids(close, ans))):
            earliest[e.trace] = e.position
    out = []
    for t, r in enumerate(natural):
        cut = earliest.get(t)
        out.append({
            "setting": "oracle", "problem": r["problem"], "sample": r["sample"],
            "correct": cut is not None or r["correct"],
            "thinking_tokens": cut if cut is not None else r["thinking_tokens"],
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="thinkctl bench accuracy", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--base-url", help="a running thinkctl server (default: start one)")
    p.add_argument("--api-key", default=os.environ.get("THINKCTL_API_KEY", "none"))
    p.add_argument("--model", default="testbed", help="an embedded model's name or a folder")
    p.add_argument("--settings", nargs="+",
                   help="default: the grid, its budgets scaled to the model's natural thinking "
                   "length (its effort calibration's, else measured by 'none')")  # fmt: skip
    p.add_argument("--data",
                   help="'testbed' (its test split) or a JSONL file of question/answer "
                   "(math-verify checks the last \\boxed{}); default: 'testbed' for the "
                   "embedded testbeds, required otherwise")  # fmt: skip
    p.add_argument("--n", type=int, help="questions used (default: all)")
    p.add_argument("--max-tokens", type=int,
                   help="per request (default: none sent; the server allows what the model's "
                   "context leaves after the prompt)")  # fmt: skip
    p.add_argument("--title", help="the plot's title (default: from the model and the data)")
    p.add_argument("--samples", type=int, default=1, help="samples per problem")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument("--probe", type=Path, help="LYNX probe for the server (default: the one "
                   "serve finds in the model's calibration folder)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    if args.data is None:
        if args.model not in embedded.TESTBEDS:
            p.error(f"--data is required for {args.model!r} (a JSONL of question/answer)")
        args.data = "testbed"
    args.out.mkdir(parents=True, exist_ok=True)
    full = datasets.load(args.data, split="test")
    data = Dataset(full.name, full.questions[: args.n], full.check)
    results = args.out / "results.jsonl"
    proc = None
    url = args.base_url
    if url is None:
        # Settings without the probe are measured without it; the others serve --probe, else
        # the one serve finds in the model's calibration folder.
        extra = ["--no-probe"]
        if any(s.startswith(("lynx", "effort_combined")) for s in args.settings or ()):
            extra = ["--probe", str(args.probe)] if args.probe else []
        # vLLM's default (compiled) mode, as `thinkctl serve` runs and the probe was calibrated.
        proc, url = start_server(args.model, args.out / "serve.log", extra, eager=False)

    def grid(settings: list[str]) -> None:
        asyncio.run(run_grid(url, args.api_key, args.model, settings, data, args.samples,
                             args.temperature, results, args.concurrency,
                             args.max_tokens))  # fmt: skip

    try:
        if any(s.startswith("effort_combined") for s in args.settings or ()):
            _require_combined(url, args.api_key)
        if args.settings is None:
            natural = natural_thinking(resolve(args.model).load)
            if natural is None:  # uncalibrated: measure it
                grid(["none"])
                natural = _mean_thinking(results, "none")
            args.settings = default_settings(natural)
            print(f"settings for {natural:.1f} natural thinking tokens: {args.settings}")
        grid(args.settings)
    finally:
        if proc is not None:
            stop_server(proc)
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["setting"] in args.settings]
    if not args.no_oracle and "none" in args.settings:
        rows += oracle_rows(resolve(args.model).folder, results, data)
    command = "thinkctl bench accuracy " + " ".join(sys.argv[1:] if argv is None else argv)
    summary = report.summarise(rows)
    (args.out / "accuracy.json").write_text(json.dumps(summary["rows"], indent=2) + "\n")
    source = "test split" if args.data == "testbed" else Path(args.data).name
    title = args.title or f"Accuracy vs thinking tokens ({args.model}, {source})"
    meta = {"command": command.strip(), "temperature": args.temperature, "samples": args.samples,
            "data": args.data, "problems": len(data.questions), "max_tokens": args.max_tokens,
            "title": title, "machine": platform.platform(),
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    (args.out / "accuracy_run.json").write_text(json.dumps(meta, indent=2) + "\n")
    report.plots(summary["rows"], args.out, title)
    print(report.table(summary))


if __name__ == "__main__":
    main()
