"""The calibration report: report.json, report.md and three PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402


def plots(out: Path, report: dict, p_test: np.ndarray, y_test: np.ndarray) -> list[str]:
    rows = report["deltas"]
    names = []

    fig, ax = plt.subplots(figsize=(4.5, 4))
    frac, mean_p = calibration_curve(y_test, p_test, n_bins=10, strategy="quantile")
    ax.plot(mean_p, frac, "o-", label="probe")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect")
    ax.set(xlabel="predicted P(exit answers right)", ylabel="observed share right",
           title=f"Calibration (held-out events, AUC {report['probe']['auc']:.3f})")  # fmt: skip
    ax.legend()
    names.append(_save(fig, out / "calibration_curve.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    d = [r["delta"] for r in rows]
    ax.plot(d, [r["premature_exit_rate_event"] for r in rows], "o-", label="per event (class 0)")
    ax.errorbar(d, [r["premature_exit_rate_event_resplit_mean"] for r in rows],
                yerr=[r["premature_exit_rate_event_resplit_sd"] for r in rows], fmt="^:",
                capsize=3, label="per event, mean ± sd of re-splits")  # fmt: skip
    ax.plot(d, [r["premature_exit_rate_trajectory"] for r in rows], "s-", label="per trajectory")
    ax.plot(d, d, "k--", lw=0.8, label="δ")
    ax.set(xlabel="δ", ylabel="premature-exit rate", title="Premature exits vs δ (held out)")
    ax.legend()
    names.append(_save(fig, out / "premature_exit_vs_delta.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["mean_thinking_tokens"] for r in rows], [r["accuracy"] for r in rows], "o-",
            label="LYNX (δ grid)")  # fmt: skip
    for r in rows:
        ax.annotate(f"δ={r['delta']}", (r["mean_thinking_tokens"], r["accuracy"]), fontsize=7)
    risk = report.get("risk") or []
    ax.plot([r["mean_thinking_tokens"] for r in risk], [r["accuracy"] for r in risk], "s-",
            label="answer-level risk (ε grid)")  # fmt: skip
    for r in risk:
        ax.annotate(f"ε={r['epsilon']}", (r["mean_thinking_tokens"], r["accuracy"]), fontsize=7)
    for key, marker in (("natural", "k*"), ("oracle", "g^"), ("ceiling", "rx")):
        if report.get(key, {}).get("mean_thinking_tokens") is None:
            continue
        label = "probe's ceiling (hindsight)" if key == "ceiling" else key
        ax.plot(report[key]["mean_thinking_tokens"], report[key]["accuracy"], marker, ms=10,
                label=label)  # fmt: skip
    ax.set(xlabel="mean thinking tokens", ylabel="accuracy",
           title="Accuracy vs thinking (held-out traces, replayed)")  # fmt: skip
    ax.legend()
    names.append(_save(fig, out / "accuracy_vs_tokens.png"))
    return names


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def markdown(report: dict, images: list[str]) -> str:
    p = report["probe"]
    lines = [
        f"# LYNX calibration report: {report['model']}",
        "",
        f"Command: `{report['command']}` ({report['seconds']:.0f} s"
        + (
            f"; {report['reused_shards']} trace shards reused from an earlier run"
            if report.get("reused_shards")
            else ""
        )
        + ").",  # fmt: skip
        "",
        f"Data: {report['data']}, {report['n_traces']} traces sampled at T = "
        f"{report['temperature']} ({report['n_events']} cue events), split by question "
        f"into train / cal / test = {report['split_traces']}. Labels: "
        + (
            "gold answers."
            if report.get("labels", "gold answers") == "gold answers"
            else "agreement of each forced exit's answer with the trace's own final answer "
            f"(label-free; {report['unreadable']} traces had no readable final answer and "
            "were kept without exits); the guarantees bound the answer-change rate."
        ),  # fmt: skip
        "",
        f"Probe: {p['kind']} on layers {p['layers']}"
        + (" plus the sampled-token confidence since the previous cue" if p["confidence"] else "")
        + f" ({p['dim']} features); validation AUC {p['auc_val']}; held-out AUC "
        f"**{p['auc']:.3f}** (every candidate on the held-out events: {p['auc_test']}). "
        f"Calibration events: class 0 (exiting would be wrong) n₀ = "
        f"{report['n_cal_class0']}, class 1 n₁ = {report['n_cal_class1']}.",  # fmt: skip
        "",
        f"Held-out traces: natural {report['natural']['accuracy']:.3f} accuracy at "
        f"{report['natural']['mean_thinking_tokens']:.1f} thinking tokens; oracle "
        f"{report['oracle']['accuracy']:.3f} at {report['oracle']['mean_thinking_tokens']:.1f}.",
        "",
        *_ceiling(report),
        *_risk(report),
        "Per-event LYNX (the paper's rule, made cluster-aware: " + report["conformal"] + "):",
        "",
        "| δ | premature exits / class-0 event | same, mean ± sd over 200 re-splits "
        "| questions with a premature exit / questions with a class-0 event, re-split mean "
        "| re-splits within δ | premature exits / trace "
        "| accuracy | mean thinking | saved vs natural | share of oracle savings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["deltas"]:
        lines.append(
            f"| {r['delta']} | {r['premature_exit_rate_event']:.3f} "
            f"| {r['premature_exit_rate_event_resplit_mean']:.4f} ± "
            f"{r['premature_exit_rate_event_resplit_sd']:.3f} "
            f"| {r['premature_exit_rate_question_resplit_mean']:.4f} "
            f"| {r['resplits_within_delta']:.0%} "
            f"| {r['premature_exit_rate_trajectory']:.3f} | {r['accuracy']:.3f} "
            f"| {r['mean_thinking_tokens']:.1f} | {r['savings']:.1%} "
            f"| {r['share_of_oracle_savings']:.1%} |"
        )
    lines += [
        "",
        "The guarantee: among cue events where exiting would be wrong, the expected share "
        "that exit is at most δ; scoring each by its question's highest class-0 score keeps "
        "it when a question's events are alike (they are not exchangeable one by one). One "
        "held-out split scatters around that expectation, so the table also gives the mean "
        "and spread over 200 random re-splits of the non-training questions, per event and "
        "per question. It does not bound the per-trace rate, which is reported beside it.",
        "",
        "Effort mapping (effort → score threshold, cap), written into probe.json and fitted "
        "on the calibration traces: the safest threshold whose mean thinking is at most "
        "effort × natural, so thinking never rises as effort falls. `certified at` is the "
        "smallest answer-level risk whose Learn-then-Test run certified that threshold. The "
        "last three columns replay it on the held-out test traces (accuracy only where no "
        "cap cuts thinking between cues):",
        "",
        "| effort | threshold | max thinking tokens | certified at "
        "| test: mean thinking | share of natural | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for e, t in zip(report["effort"], report["effort_test"], strict=True):
        acc = "—" if t["accuracy"] is None else f"{t['accuracy']:.3f}"
        th = "—" if e["threshold"] is None else f"{e['threshold']:.4f}"
        cert = "—" if e["max_accuracy_loss"] is None else f"ε = {e['max_accuracy_loss']}"
        lines.append(
            f"| {e['effort']} | {th} | {e['max_thinking_tokens']} | {cert} "
            f"| {t['mean_thinking_tokens']:.1f} | {t['share_of_natural']:.2f} | {acc} |"
        )
    lines += ["", *_length(report), *[f"![{name}]({name})" for name in images], ""]
    return "\n".join(lines)


def _length(report: dict) -> list[str]:
    """The length predictors and per-query effort (calibration/length.py)."""
    ln = report.get("length")
    if not ln:
        return []
    rho = ln["spearman_test"]
    lines = [
        f"Length predictors (`{ln['folder']}`): ridge on the prompt's last-token features of "
        f"blocks {ln['layers']} (chosen on the cal questions; validation Spearman ρ of "
        f"natural, sufficient by blocks: {ln['spearman_validation_by_layers']}). Held-out "
        f"Spearman ρ with the natural length **{rho['natural']:.3f}**, with the sufficient "
        f"length **{rho['sufficient']:.3f}**.",
        "",
        "Effort, replayed on the held-out test traces (a trace is cut at its budget and "
        "answers as its last forced exit before it did, at a cue or on the `--exit-every` "
        "grid): the global cap against per-query budgets (a budget per bin of predicted "
        "natural length, probes/effort_table.QueryBudget, chosen on the cal questions at no "
        "more spend than the global cap):",
        "",
        "| effort | global: accuracy | mean thinking | per-query: accuracy | mean thinking |",
        "|---|---|---|---|---|",
    ]
    for r in ln["effort_test"]:
        lines.append(
            f"| {r['effort']} | {r['global_accuracy']:.3f} | {r['global_thinking_tokens']:.1f} "
            f"| {r['per_query_accuracy']:.3f} | {r['per_query_thinking_tokens']:.1f} |"
        )
    return [*lines, "", *_combined(ln.get("combined_test")), *_reserve(ln.get("answer_reserve"))]


def _reserve(reserve: dict | None) -> list[str]:
    if not reserve:
        return []
    return [
        f"Answer reserve: **{reserve['tokens']}** tokens, the {reserve['percentile']}th "
        f"percentile of the answer's length after natural thinking over {reserve['n']} "
        "traces that closed thinking and stopped on their own (`serve` keeps it for the "
        "answer when max_tokens would run out inside thinking).",
        "",
    ]


def _combined(rows: list[dict] | None) -> list[str]:
    """Effort as one policy (calibration/combined.py) against each mechanism alone."""
    if not rows:
        return []
    lines = [
        "Effort as one policy (calibration/combined.py: a LYNX exit at a certified threshold "
        "and a budget, chosen on the cal questions), replayed on the held-out test traces "
        "against LYNX's effort points and the per-query budgets alone:",
        "",
        "| effort | combined: accuracy | mean thinking | lynx_effort: accuracy | mean thinking "
        "| effort_query: accuracy | mean thinking | policy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["policy"]
        what = ", ".join(f"{k} {v}" for k, v in p.items() if k != "effort" and v is not None)
        lines.append(
            f"| {r['effort']} | {r['combined_accuracy']:.3f} | {r['combined_thinking_tokens']:.1f} "
            f"| {r['lynx_effort_accuracy']:.3f} | {r['lynx_effort_thinking_tokens']:.1f} "
            f"| {r['effort_query_accuracy']:.3f} | {r['effort_query_thinking_tokens']:.1f} "
            f"| {what or 'none'} |"
        )
    return [*lines, ""]


def _ceiling(report: dict) -> list[str]:
    c = report.get("ceiling")
    if not c or c["threshold"] is None:
        return []
    return [
        f"Ceiling of this probe: the best any one threshold on its score does on the "
        f"held-out traces within {100 * c['max_accuracy_loss']:g} point of natural accuracy, the "
        f"threshold chosen on those traces themselves, is {c['savings']:.1%} saved "
        f"({c['mean_thinking_tokens']:.1f} thinking tokens, accuracy {c['accuracy']:.3f}). "
        f"Every δ is such a threshold, so no δ saves more here at that accuracy; "
        f"hindsight, not a policy.",
        "",
    ]


def _risk(report: dict) -> list[str]:
    rows = report.get("risk") or []
    if not rows:
        return []
    lines = [
        f"Answer-level risk ({report['risk_method']}). A request's `max_accuracy_loss` ε: with "
        f"probability at least 1 − α over the calibration questions, the expected accuracy "
        f"lost against natural thinking on a new question drawn like them is at most ε. "
        f"Test columns: the held-out test questions; re-split columns: 200 random re-splits "
        f"of the cal + test questions, each choosing on its cal part and measuring on the "
        f"rest (the loss is natural right and exit wrong, an upper bound on accuracy lost).",
        "",
        "| ε | α | threshold | test accuracy (natural) | test mean thinking | saved "
        "| test loss | re-split mean loss | re-splits with loss > ε |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        th = "— (no exit)" if r["threshold"] is None else f"{r['threshold']:.4f}"
        lines.append(
            f"| {r['epsilon']} | {r['alpha']} | {th} | {r['accuracy']:.4f} "
            f"({r['natural_accuracy']:.4f}) | {r['mean_thinking_tokens']:.1f} "
            f"| {r['savings']:.1%} | {r['test_loss']:.4f} | {r['resplit_loss_mean']:.4f} "
            f"| {r['resplit_share_over_epsilon']:.1%} |"
        )
    return [*lines, ""]


def write(out: Path, report: dict, p_test: np.ndarray, y_test: np.ndarray) -> None:
    images = plots(out, report, p_test, y_test)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report, images))
