"""Measure a testbed model through vLLM on the CPU and write metrics.json beside it.

    python -m thinkctl.testbed.evaluate --model testbed/model  # 1,000 test problems, T = 0.6
    python -m thinkctl.testbed.evaluate --model testbed-r1     # an embedded one, by name

Measured on the held-out test split, sampled at temperature 0.6:
- accuracy_think: final answers with natural thinking;
- accuracy_no_think: the end of thinking forced at once (prompt + `</think>` + the
  folder's answer inducer);
- forced exits at every cue of every natural trace (trace cut before the cue, then
  `</think>`, the inducer and a greedy answer): well-formed rate, the earliest correct one,
  and which traces pass a cue where exiting would be wrong yet end correct;
- overthinking_ratio_median: thinking tokens / tokens up to the earliest cue whose
  forced exit is correct, median over traces that have such a cue.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from thinkctl.models.resolve import resolve
from thinkctl.probes import model_folder
from thinkctl.probes.cues import cue_token_ids_of
from thinkctl.probes.forced_exit import answer_ids, forced_exits
from thinkctl.testbed import tasks


def evaluate(model: Path, n: int, temperature: float, seed: int) -> dict:
    from thinkctl.engine.offline import OfflineEngine

    engine = OfflineEngine(str(model), seed)
    tok = engine.tokenizer
    think = model_folder.read(model, tok)  # the folder's thinkctl.json: the boxed inducer
    end_id = think.require_end()
    close = think.close()
    cue_ids = cue_token_ids_of(tok)  # "Wait", " Wait", "wait", ... wherever they are tokens
    problems = tasks.held_out("test")[:n]
    prompts = tasks.prompt_ids(tok, problems)
    room = engine.max_model_len - max(map(len, prompts))
    t0 = time.time()
    outputs = [c.ids for c in engine.generate(prompts, room, temperature, progress=True)]
    gen_seconds = time.time() - t0

    def answer_after_end(ids: list[int]) -> str:
        return tok.decode(ids[ids.index(end_id) + 1 :]) if end_id in ids else ""

    think_ok = [
        tasks.is_correct(p, answer_after_end(o)) for p, o in zip(problems, outputs, strict=True)
    ]
    thinking = [o.index(end_id) if end_id in o else len(o) for o in outputs]

    # No thinking: the same forced exit as at a cue, at position 0.
    no_think = engine.generate([[*p, *close] for p in prompts], 8, temperature, progress=True)
    no_think_text = [tok.decode(answer_ids(close, c.ids)) for c in no_think]
    no_think_ok = [tasks.is_correct(p, t) for p, t in zip(problems, no_think_text, strict=True)]

    exits = forced_exits(prompts, outputs, cue_ids, close)
    greedy = engine.greedy_ids([e.prompt_ids for e in exits])
    answers = [tok.decode(answer_ids(close, a)) for a in greedy]
    by_trace: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for e, text in zip(exits, answers, strict=True):
        by_trace[e.trace].append((e.position, tasks.extract_answer(text)))

    ratios, self_corrected, first_cue_ok = [], 0, []
    for t, p in enumerate(problems):
        events = by_trace.get(t, [])
        correct_at = [pos for pos, a in events if a == p.answer]
        if correct_at:
            ratios.append(thinking[t] / correct_at[0])
        if events:
            first_cue_ok.append(events[0][1] == p.answer)
        if think_ok[t] and any(a != p.answer for _, a in events):
            self_corrected += 1
    by_difficulty: dict[int, list[int]] = defaultdict(list)
    for p, k in zip(problems, thinking, strict=True):
        by_difficulty[p.difficulty].append(k)
    well_formed = [tasks.extract_answer(a) is not None for a in answers]
    return {
        "accuracy_think": _mean(think_ok),
        "accuracy_no_think": _mean(no_think_ok),
        "no_think_well_formed_rate": _mean(
            [tasks.extract_answer(t) is not None for t in no_think_text]
        ),
        "overthinking_ratio_median": round(statistics.median(ratios), 3) if ratios else None,
        "self_correction_rate": round(self_corrected / len(problems), 4),
        "forced_exit_well_formed_rate": _mean(well_formed),
        "mean_thinking_tokens_by_difficulty": {
            str(d): round(statistics.mean(v), 1) for d, v in sorted(by_difficulty.items())
        },
        "forced_exit_first_cue_accuracy": _mean(first_cue_ok),
        "traces_closed_rate": _mean([end_id in o for o in outputs]),
        "mean_thinking_tokens": round(statistics.mean(thinking), 1),
        "n_problems": len(problems),
        "n_forced_exits": len(exits),
        "n_traces_with_correct_cue": len(ratios),
        "temperature": temperature,
        "seed": seed,
        "generation_tokens_per_second": round(sum(map(len, outputs)) / gen_seconds, 1),
    }


def _mean(xs: list[bool]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="testbed", help="a model folder or an embedded name (models/resolve.py)"
    )
    p.add_argument("--n", type=int, default=tasks.SPLIT_SIZES["test"])
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="metrics file (default: MODEL/metrics.json)")
    args = p.parse_args(argv)
    model = resolve(args.model)
    # testbed-r1 loads from its expanded cache folder; its metrics live in testbed/r1.
    folder, shipped = model.folder, model.shipped or model.folder
    metrics = evaluate(folder, args.n, args.temperature, args.seed)
    metrics["command"] = "python -m thinkctl.testbed.evaluate " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    out = args.out or shipped / "metrics.json"
    out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
