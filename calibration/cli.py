"""`thinkctl calibrate`: everything `thinkctl serve` uses for a model, in one run.

    thinkctl calibrate --model M --data questions.jsonl
    thinkctl calibrate --model testbed --max-tokens 450 --answer-tokens 8 --out DIR

Samples traces with vLLM (like the serving default), records the residual stream and
the sampled-token confidence (probes/confidence.py) at every cue event inside the engine,
labels events by forced exits, trains the probe (on the hidden state alone and with the
confidence, keeping what validates better unless --confidence says which),
computes the conformal scores, maps effort onto (delta, cap), and writes the probe
artifact plus report.json / report.md / plots into OUT. From the same traces it fits the
effort table, the length predictors (from the prompt's features, recorded by the same
hooks) and per-query effort (calibration/length.py), written into the model's calibration
folder, where `thinkctl serve --model M` finds them (probes/model_folder.calibration_dir;
OUT defaults to its `probe/`). Finished trace shards in OUT/work are reused when the
command is run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from thinkctl.calibration import combined, datasets, length, lynx, report, risk, traces
from thinkctl.errors import CommandError
from thinkctl.models import embedded
from thinkctl.models.preset import Preset
from thinkctl.models.resolve import resolve
from thinkctl.probes import effort_table, length_predictor, model_folder
from thinkctl.probes.artifact import FORMAT, EffortPoint, ProbeArtifact, ProbeMeta, RiskPoint
from thinkctl.probes.cues import DEFAULT_CUES, cue_token_ids_of
from thinkctl.probes.effort_table import GRID, LEVELS
from thinkctl.probes.features import FeatureSpec, default_layers, model_facts
from thinkctl.probes.model_folder import ThinkTokens

DELTAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
# --confidence -> candidate probe inputs (True: hidden state + confidence value)
CONFIDENCE = {"auto": (False, True), "on": (True,), "off": (False,)}
DEFAULT_DELTA = 0.05
REPORTED_EFFORTS = (0.3, 0.5, 0.7)  # the report's global-vs-per-query rows, with the levels


def think_tokens(
    model: str, args: argparse.Namespace, tokenizer=None, preset: Preset | None = None
) -> ThinkTokens:
    """The model folder's conventions (probes/model_folder.py) under the catalogue preset
    and this command's flags: the same facts `serve` reads, so a probe is calibrated on
    the exit sequence it will be served with."""
    flags = {"think_end": args.think_end, "answer_inducer": args.answer_inducer}
    defaults = preset.control_defaults() if preset is not None else None
    return model_folder.read(model, tokenizer, defaults, flags)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="thinkctl calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        required=True,
        help="a model folder, an embedded name or a hub id (models/resolve.py)",
    )
    p.add_argument(
        "--data",
        help="a JSONL file of question/answer, 'testbed' (its calibration split) or "
        "'testbed:N' (extended to N problems); default: 'testbed' for --model testbed, "
        "required otherwise",
    )
    p.add_argument("--out", type=Path, help="Folder for the probe and report (default: "
                   "the calibration folder's probe/).")  # fmt: skip
    p.add_argument("--calibration", type=Path, help="Folder for effort.json and the length "
                   "predictor (default: the model folder when writable, else the cache by "
                   "model id: where `thinkctl serve` looks).")  # fmt: skip
    p.add_argument("--samples", type=int, default=4, help="Traces per question.")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int,
                   help="Per trace (default: what the model's context leaves after the prompt; "
                   "the shipped testbed probes used 450).")  # fmt: skip
    p.add_argument("--answer-tokens", type=int, default=32,
                   help="Decoded per forced exit (the shipped testbed probes used 8).")  # fmt: skip
    p.add_argument("--exit-every", type=int, default=0,
                   help="Also force an exit every N thinking tokens (labels only: budgets "
                   "replay and sufficient lengths between cues; default: cues only).")  # fmt: skip
    p.add_argument("--layers", type=lambda s: tuple(int(x) for x in s.split(",")),
                   help="1-based decoder blocks (default: all of a small model, else ~L/3, "
                   "~4L/7, L)")  # fmt: skip
    p.add_argument("--cues", default=",".join(DEFAULT_CUES), help="Cue words, comma-separated.")
    p.add_argument("--confidence", choices=CONFIDENCE, default="auto",
                   help="Probe inputs: the hidden state plus the sampled-token confidence since "
                   "the previous cue ('on'), the hidden state alone ('off'), or whichever "
                   "validates better ('auto')")  # fmt: skip
    p.add_argument("--think-end", help="Default: the model folder's thinkctl.json, else "
                   f"{model_folder.THINK_END}.")  # fmt: skip
    p.add_argument("--answer-inducer", help="Default: the model folder's thinkctl.json.")
    p.add_argument("--deltas", type=lambda s: [float(x) for x in s.split(",")], default=DELTAS)
    p.add_argument("--default-delta", type=float, default=DEFAULT_DELTA)
    p.add_argument("--epsilons", type=lambda s: [float(x) for x in s.split(",")],
                   default=list(risk.EPSILONS),
                   help="answer-level risks to calibrate (max_accuracy_loss)")  # fmt: skip
    p.add_argument("--alpha", type=float, default=risk.ALPHA,
                   help="the risk guarantee's confidence is 1 - alpha")  # fmt: skip
    p.add_argument(
        "--prompts",
        help='a JSONL file of prompts without answers ({"question"} or {"messages"} per '
        "line): forced exits are labelled by agreement with the model's own final answer "
        "after natural thinking on the same trace, instead of --data's gold answers",
    )
    p.add_argument(
        "--answer-format", default="boxed",
        help="with --prompts, how answers are read and compared: boxed (math-verify on the "
        "last \\boxed{}), choice (a multiple-choice letter), exact (the last line), or "
        "json:FIELD",
    )  # fmt: skip
    p.add_argument("--limit", type=int, help="Use only the first N questions (smoke runs).")
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kv-cache-memory-bytes", type=int, default=1 << 30)
    args = p.parse_args(argv)
    if args.prompts is not None:
        if args.data is not None:
            p.error("--prompts and --data exclude each other")
        try:
            datasets.answer_format(args.answer_format)
        except ValueError as exc:
            p.error(str(exc))
        args.data = f"{args.prompts} (prompts)"
    elif args.data is None:
        if args.model not in embedded.TESTBEDS:
            p.error(f"--data is required for {args.model!r} (a JSONL of question/answer)")
        args.data = "testbed"
    return args


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    args.command = "thinkctl calibrate " + shlex.join(argv)
    t0 = time.time()
    # testbed-r1 loads from its expanded cache folder: pass `--calibration testbed/r1` to
    # write what the package ships.
    target = resolve(args.model)
    model = target.load
    preset = Preset(target.entry, True) if target.entry else None
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    facts = model_facts(AutoConfig.from_pretrained(model), tok)
    think = think_tokens(model, args, tok, preset)
    if think.end is None:
        raise CommandError(f"{think.conventions.think_end!r} is not one "
                         f"token of {model}")  # fmt: skip
    cue_words = tuple(w.strip() for w in args.cues.split(",") if w.strip())
    spec = FeatureSpec(
        layers=args.layers or default_layers(facts.num_layers),
        cue_words=cue_words,
        cue_token_ids=tuple(cue_token_ids_of(tok, cue_words)),
        think_end_id=think.end,
        confidence=True,  # always recorded (last column); the fit decides whether to use it
    )
    close_ids = think.close()
    data = (datasets.load_prompts(args.prompts, args.answer_format) if args.prompts
            else datasets.load(args.data))  # fmt: skip
    if args.limit:
        data = dataclasses.replace(data, questions=data.questions[: args.limit])
    folder = args.calibration or model_folder.calibration_dir(model)
    args.out = args.out or folder / model_folder.PROBE_DIR
    args.out.mkdir(parents=True, exist_ok=True)

    def make_generator() -> traces.Generator:
        kwargs = {"kv_cache_memory_bytes": args.kv_cache_memory_bytes}
        return traces.Generator(model, spec, args.seed, kwargs)

    tr, reused = traces.generate(
        make_generator, data, args.samples, args.out / "work", args.shard_size,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
        close_ids=close_ids, answer_tokens=args.answer_tokens, exit_every=args.exit_every,
    )  # fmt: skip
    if tr.events.features.shape[1] != spec.dim(facts.hidden_size):
        raise CommandError(
            f"{args.out / 'work'} holds traces recorded with other "
            f"features ({tr.events.features.shape[1]} values, not "
            f"{spec.dim(facts.hidden_size)}); remove it to record anew"
        )
    args.labels = data.labels
    result = fit_and_report(tr, len(data.questions), spec, facts, args, model, close_ids)
    artifact = result.pop("artifact")
    artifact.save(args.out)  # first: the combined effort names the probe's checksum
    lynx_side = (*result.pop("combine"), artifact.meta.tensors_sha256)
    result["length"] = effort_and_length(tr, len(data.questions), spec, facts, args, folder,
                                         lynx_side)  # fmt: skip
    result["seconds"] = round(time.time() - t0, 1)
    result["reused_shards"] = reused
    p_test, y_test = result.pop("test")
    report.write(args.out, result, p_test, y_test)
    print(f"wrote {args.out}/probe.json, probe.safetensors, report.json, report.md; "
          f"{folder}/{effort_table.EFFORT_FILE}, {length_predictor.SUBFOLDER}/")  # fmt: skip
    print((args.out / "report.md").read_text())


def fit_and_report(
    tr: traces.Traces, n_questions: int, spec: FeatureSpec, facts, args, model: str,
    close_ids: list[int],
) -> dict:  # fmt: skip
    ev = tr.events
    keep = ev.label >= 0  # malformed forced answers say nothing about the cue
    masks = lynx.split_questions(n_questions, args.seed)
    ev_split = {k: keep & m[tr.question[ev.trace]] for k, m in masks.items()}
    trace_split = {k: np.where(m[tr.question])[0] for k, m in masks.items()}
    x, y = ev.features, (ev.label == 1).astype(int)
    fitted = lynx.fit_best(x[ev_split["train"]], y[ev_split["train"]],
                           tr.question[ev.trace][ev_split["train"]], args.seed,
                           CONFIDENCE[args.confidence])  # fmt: skip
    p_all = fitted.prob(x)
    spec = spec.model_copy(update={"confidence": fitted.confidence})
    from thinkctl.probes.conformal import Calibration

    q_ev = tr.question[ev.trace]
    cal = Calibration.from_probs(p_all[ev_split["cal"]], y[ev_split["cal"]],
                                 q_ev[ev_split["cal"]])  # fmt: skip
    test_ev, test_tr = ev_split["test"], trace_split["test"]
    auc = float(roc_auc_score(y[test_ev], p_all[test_ev]))
    auc_test = {  # every candidate on the held-out events: what each input contributes
        name: round(float(roc_auc_score(y[test_ev], pr.prob(lynx.columns(x[test_ev], c)))), 4)
        for name, (pr, c) in fitted.others.items()
    }
    natural = lynx.replay(tr, test_tr, np.zeros(len(y), bool))
    best = lynx.oracle(tr, test_tr)
    ceiling = lynx.ceiling(tr, test_tr, np.where(keep, p_all, -1.0))
    pool = keep & (masks["cal"][q_ev] | masks["test"][q_ev])
    resplit = lynx.resplit_event_rates(p_all, y, q_ev, pool, list(args.deltas), seed=args.seed)
    rows = []
    for d in args.deltas:
        th = cal.thresholds(d)
        r = lynx.replay(tr, test_tr, th.exits_many(p_all) & keep)
        saved = 1 - r.mean_thinking_tokens / natural.mean_thinking_tokens
        oracle_saved = 1 - best.mean_thinking_tokens / natural.mean_thinking_tokens
        rows.append({
            "delta": d, "n_cal_class0": cal.n0, "auc": round(auc, 4),
            "q0": th.q0, "q1": th.q1,
            "premature_exit_rate_event": lynx.event_premature_rate(th, p_all[test_ev],
                                                                   y[test_ev]),
            "event_bound": d + 1 / (cal.n0 + 1),
            "premature_exit_rate_event_resplit_mean": resplit[d]["event_mean"],
            "premature_exit_rate_event_resplit_sd": resplit[d]["event_sd"],
            "premature_exit_rate_question_resplit_mean": resplit[d]["question_mean"],
            "resplits_within_delta": resplit[d]["share_within_delta"],
            "premature_exit_rate_trajectory": r.premature_exit_rate_trajectory,
            "accuracy": r.accuracy, "mean_thinking_tokens": r.mean_thinking_tokens,
            "exit_rate": r.exit_rate, "savings": saved,
            "share_of_oracle_savings": saved / oracle_saved if oracle_saved > 0 else 0.0,
        })  # fmt: skip
    risk_rows, certified, tables = _risk(tr, trace_split, p_all[ev_split["train"]], p_all, args)
    effort = lynx.effort_points(tables["cal"], certified, list(GRID))
    effort_test = [lynx.effort_replay(tables["test"], e) for e in effort]
    meta = ProbeMeta(
        format=FORMAT, model=facts, features=spec, kind=fitted.kind,
        default_delta=args.default_delta,
        effort=[EffortPoint(**e) for e in effort],
        risk=[RiskPoint(epsilon=r["epsilon"], alpha=r["alpha"], threshold=r["threshold"])
              for r in risk_rows],
        tensors_sha256="0" * 64,  # set by save()
        training={"data": args.data, "n_traces": int(len(tr.question)),
                  "n_events": int(len(y)), "temperature": args.temperature,
                  "seed": args.seed, "auc_test": round(auc, 4),
                  "exit_ids": list(close_ids), "labels": args.labels},
    )  # fmt: skip
    return {
        "artifact": ProbeArtifact(meta, fitted.probe, cal),
        "test": (p_all[test_ev], y[test_ev]),
        "combine": (tables, effort, certified),
        "model": args.model, "data": args.data, "temperature": args.temperature,
        "labels": args.labels,
        "unreadable": int((tr.correct == 0).sum()) if args.labels == "self-agreement" else 0,
        "command": args.command,
        "n_traces": int(len(tr.question)), "n_events": int(len(y)),
        "split_traces": " / ".join(str(len(trace_split[k])) for k in lynx.SPLITS),
        "n_cal_class0": cal.n0, "n_cal_class1": cal.n1,
        "probe": {"kind": fitted.kind, "layers": list(spec.layers),
                  "confidence": fitted.confidence, "dim": spec.dim(facts.hidden_size),
                  "auc": auc, "auc_val": fitted.auc_val, "auc_test": auc_test},
        "natural": vars(natural), "oracle": vars(best), "ceiling": ceiling,
        "deltas": rows, "effort": effort, "effort_test": effort_test,
        "conformal": "each class-0 calibration event scored by its question's highest "
                     "class-0 score (probes/conformal.py), so a class-0 cue exits only when "
                     "its question's highest class-0 score clears q0",
        "risk_method": risk.METHOD, "risk": risk_rows,
    }  # fmt: skip


def effort_and_length(
    tr: traces.Traces, n_questions: int, spec: FeatureSpec, facts, args, folder: Path,
    lynx_side: tuple | None = None,
) -> dict:  # fmt: skip
    """The effort table, the length predictors and per-query effort, written into `folder`
    (calibration/length.py); with `lynx_side` (the probe's exit tables by split, its
    effort points, Learn-then-Test's certified columns, its checksum), effort as one
    policy of both (calibration/combined.py). What the report says of them."""
    masks = lynx.split_questions(n_questions, args.seed)
    split = {k: m[tr.question] for k, m in masks.items()}
    rp = length.Replay.of(tr)
    made = {"tokenizer_sha256": facts.tokenizer_sha256, "command": args.command}
    predictor, quality = length.fit_predictor(tr.prompt_features, length.targets(rp), split,
                                              spec.layers, facts.hidden_size, made)  # fmt: skip
    pred = predictor.predict(tr.prompt_features[:, predictor.columns(spec.layers)])
    table = effort_table.fit(tr.thinking_tokens)
    grid = [(e, b) for e, b in table["points"] if 0 < e < 1]
    points = length.fit_policy(rp, np.flatnonzero(split["cal"]), pred, grid)
    where = f"{length_predictor.SUBFOLDER}/{length_predictor.META_FILE}"
    table["per_query"] = {"predictor": where, "points": [q.as_json() for q in points]}
    combined_test = None
    if lynx_side is not None:
        tables, probe_points, certified, sha = lynx_side
        cal, test = (np.flatnonzero(split[k]) for k in ("cal", "test"))
        chosen, _ = combined.fit(tables["cal"], rp, cal, pred, points, probe_points, certified)
        table["combined"] = {"probe_sha256": sha, "points": [c.as_json() for c in chosen]}
        _, combined_test = combined.fit(tables["test"], rp, test, pred, points,
                                        probe_points, certified, fixed=chosen)  # fmt: skip
    table["calibration"] = {"command": args.command, "data": args.data,
                            "n": int(len(tr.question)), "temperature": args.temperature,
                            "seed": args.seed}  # fmt: skip
    table["model"] = {"tokenizer_sha256": facts.tokenizer_sha256}
    if (reserve := effort_table.answer_reserve(tr.answer_tokens)) is not None:
        table["answer_reserve"] = reserve
    predictor.save(folder / length_predictor.SUBFOLDER)
    (folder / effort_table.EFFORT_FILE).write_text(json.dumps(table, indent=2) + "\n")
    efforts = sorted({*REPORTED_EFFORTS, *(v for v in LEVELS.values() if 0 < v < 1)})
    test = length.compare(rp, np.flatnonzero(split["test"]), pred, points, grid, tuple(efforts))
    return {"folder": str(folder), "layers": list(predictor.layers), **quality,
            "effort_test": test, "combined_test": combined_test,
            "answer_reserve": reserve}  # fmt: skip


def _risk(tr, trace_split: dict, train_scores, p_all, args) -> tuple[list, dict, dict]:
    """Learn-then-Test over score thresholds (calibration/risk.py): chosen on the cal
    questions, measured on the test questions, and re-split 200 times over both."""
    grid = risk.threshold_grid(train_scores)
    tables = {k: risk.exit_table(tr, trace_split[k], p_all, grid) for k in ("cal", "test")}
    pool = np.sort(np.r_[trace_split["cal"], trace_split["test"]])
    share = lynx.SPLITS["cal"] / (lynx.SPLITS["cal"] + lynx.SPLITS["test"])
    again = risk.resplit(risk.exit_table(tr, pool, p_all, grid), list(args.epsilons),
                         args.alpha, share, seed=args.seed)  # fmt: skip
    _, cal_losses = tables["cal"].per_question(tables["cal"].loss)
    certified = {e: risk.certified(cal_losses, e, args.alpha) for e in args.epsilons}
    test, rows = tables["test"], []
    for e, n in certified.items():
        col = max(n - 1, 0)
        rows.append({
            "epsilon": e, "alpha": args.alpha,
            "threshold": None if col == 0 else float(grid[col]),
            "accuracy": float(test.correct[:, col].mean()),
            "natural_accuracy": float(test.correct[:, 0].mean()),
            "mean_thinking_tokens": float(test.tokens[:, col].mean()),
            "savings": float(1 - test.tokens[:, col].mean() / test.tokens[:, 0].mean()),
            "test_loss": float(test.loss[:, col].mean()),
            **again[e],
        })  # fmt: skip
    return rows, certified, tables


if __name__ == "__main__":
    main()
