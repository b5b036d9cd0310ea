"""Summaries of benchmark rows: the accuracy table, savings, and the Pareto plot."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(centre - half, 4), round(centre + half, 4))


def family(setting: str) -> str:
    """Which curve a setting belongs to: budget:60 -> budget; combinations keep their name."""
    return setting if "+" in setting else setting.split(":")[0]


def summarise(rows: list[dict], **meta) -> dict:
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_setting[r["setting"]].append(r)
    out = []
    for setting, rs in by_setting.items():
        tokens = [r["thinking_tokens"] for r in rs]
        probe = [r.get("probe_tokens", 0) for r in rs]  # side probes' tokens (DEER, Dynasor)
        k = sum(r["correct"] for r in rs)
        out.append({
            "setting": setting, "family": family(setting), "n": len(rs),
            "accuracy": round(k / len(rs), 4), "accuracy_ci95": wilson(k, len(rs)),
            "mean_thinking_tokens": round(statistics.mean(tokens), 1),
            "median_thinking_tokens": statistics.median(tokens),
            "probe_tokens": round(statistics.mean(probe), 1),
            "total_tokens": round(statistics.mean(t + q for t, q in zip(tokens, probe,
                                                                        strict=True)), 1),
        })  # fmt: skip
    _answer_changes(by_setting, out)
    base = next((r for r in out if r["setting"] == "none"), None)
    oracle = next((r for r in out if r["setting"] == "oracle"), None)
    for r in out:
        if base:
            r["savings_vs_none"] = round(
                1 - r["mean_thinking_tokens"] / base["mean_thinking_tokens"], 4
            )
        if base and oracle and base["mean_thinking_tokens"] > oracle["mean_thinking_tokens"]:
            best = base["mean_thinking_tokens"] - oracle["mean_thinking_tokens"]
            r["share_of_oracle_savings"] = round(
                (base["mean_thinking_tokens"] - r["mean_thinking_tokens"]) / best, 4
            )
    out.sort(key=lambda r: (r["family"], r["mean_thinking_tokens"]))
    return {"rows": out, **meta}


def _answer_changes(by_setting: dict[str, list[dict]], out: list[dict]) -> None:
    """Each setting's share of questions whose answer differs from `none`'s on the same seed
    (rows that recorded answers): where control changed the answer, which a label-free
    guarantee bounds. The same seed gives the same trace up to the first intervention."""
    natural = {(r["problem"], r["sample"]): r["answer"]
               for r in by_setting.get("none", []) if "answer" in r}  # fmt: skip
    if not natural:
        return
    for r in out:
        pairs = [(natural[key], x["answer"]) for x in by_setting[r["setting"]]
                 if "answer" in x and (key := (x["problem"], x["sample"])) in natural]  # fmt: skip
        if pairs:
            r["answer_changed_vs_none"] = round(sum(a != b for a, b in pairs) / len(pairs), 4)


def table(summary: dict) -> str:
    """Markdown; with probe and total columns when any setting ran side probes, and the
    answer-change column when the rows recorded answers."""
    probes = any(r.get("probe_tokens") for r in summary["rows"])
    changes = any("answer_changed_vs_none" in r for r in summary["rows"])
    extra = " probe | total |" * probes + " answer changed |" * changes
    rule = "|---|---|---|---|---|---|" + "---|---|" * probes + "---|" * changes
    lines = ["| setting | n | accuracy (95% CI) | mean thinking | savings | share of oracle |"
             + extra, rule]  # fmt: skip
    for r in summary["rows"]:
        lo, hi = r["accuracy_ci95"]
        cost = r.get("total_tokens", r["mean_thinking_tokens"])
        changed = r.get("answer_changed_vs_none")
        lines.append(
            f"| {r['setting']} | {r['n']} | {r['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) "
            f"| {r['mean_thinking_tokens']:.1f} | {r.get('savings_vs_none', 0):.1%} "
            f"| {r.get('share_of_oracle_savings', float('nan')):.1%} |"
            + (f" {r.get('probe_tokens', 0):.1f} | {cost:.1f} |" if probes else "")
            + ((f" {changed:.1%} |" if changed is not None else " — |") if changes else "")
        )
    return "\n".join(lines)


def plot(
    summary: dict, path: Path, title: str = "Accuracy vs thinking tokens", x: str = "thinking"
) -> None:
    """The Pareto plot; `x="total"` puts thinking plus side-probe tokens on the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _curves(ax, summary["rows"], x=_X[x][0])
    _finish(fig, ax, title, path, _X[x][1])


# x axis -> (row key, label)
_X = {
    "thinking": ("mean_thinking_tokens", "mean thinking tokens per request"),
    "total": ("total_tokens", "mean thinking + side-probe tokens per request"),
}


# One colour per curve family, so that compared models match by colour: matplotlib's ten,
# then two more.
FAMILIES = ("none", "oracle", "budget", "ts", "top_h", "effort", "lynx", "lynx_effort",
            "lynx_risk", "effort_query", "deer", "dynasor")  # fmt: skip
_MORE_COLOURS = ("black", "darkgoldenrod")


def frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (tokens, accuracy) points, by tokens: no other point
    spends no more tokens and answers at least as well, one of them strictly."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    keep, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            keep.append(i)
            best = points[i][1]
    return keep


def _curves(
    ax, rows: list[dict], model: str = "", style: str = "-", x: str = "mean_thinking_tokens"
) -> None:
    """Each family's settings as points, its non-dominated frontier as the line through
    them; a setting another of its family beats is drawn faint."""
    curves: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        curves[r["family"]].append(r)
    for name, rs in sorted(curves.items()):
        pts = [(r.get(x, r["mean_thinking_tokens"]), r["accuracy"]) for r in rs]
        front = frontier(pts)
        marker = "*" if name in ("none", "oracle") else "o"
        size = 10 if marker == "*" else 5
        i = FAMILIES.index(name) if name in FAMILIES else None
        colour = None if i is None else f"C{i}" if i < 10 else _MORE_COLOURS[i - 10]
        line = ax.plot([pts[k][0] for k in front], [pts[k][1] for k in front], marker=marker,
                       markersize=size, linestyle=style, color=colour,
                       label=f"{model}: {name}" if model else name)[0]  # fmt: skip
        beaten = [k for k in range(len(pts)) if k not in front]
        if beaten:
            ax.plot([pts[k][0] for k in beaten], [pts[k][1] for k in beaten], marker=marker,
                    markersize=size, linestyle="none", color=line.get_color(),
                    alpha=0.3)  # fmt: skip


def _finish(
    fig, ax, title: str, path: Path, xlabel: str = "mean thinking tokens per request"
) -> None:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(runs: dict[str, list[dict]], path: Path, families: set[str] | None = None) -> None:
    """Several models' curves on one plot (model -> its accuracy.json rows), one line
    style per model; `families` keeps only those curves (e.g. none, budget, oracle)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (model, rows), style in zip(runs.items(), ("-", "--", ":", "-."), strict=False):
        rows = [r for r in rows if families is None or r["family"] in families]
        _curves(ax, rows, model, style)
    _finish(fig, ax, "Accuracy vs thinking tokens: " + " vs ".join(runs), path)


def plots(rows: list[dict], folder: Path, title: str) -> None:
    """A results folder's plots: pareto.png, and pareto_total.png when side probes spent
    tokens of their own."""
    plot({"rows": rows}, folder / "pareto.png", title)
    if any(r.get("probe_tokens") for r in rows):
        total_title = title.replace("thinking tokens", "thinking + side-probe tokens")
        plot({"rows": rows}, folder / "pareto_total.png", total_title, x="total")


def replot(folder: Path) -> None:
    """A results folder's plots again from its accuracy.json (no requests)."""
    import json

    run = folder / "accuracy_run.json"
    title = json.loads(run.read_text()).get("title") if run.exists() else None
    plots(json.loads((folder / "accuracy.json").read_text()), folder,
          title or "Accuracy vs thinking tokens")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """`python -m thinkctl.bench.report --compare testbed=bench/results concise=DIR --out F.png`
    or `--replot bench/results` (the folder's pareto plots from its accuracy.json)."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m thinkctl.bench.report", description=compare.__doc__)
    p.add_argument("--compare", nargs="+", metavar="NAME=RESULTS_DIR")
    p.add_argument("--replot", type=Path, metavar="RESULTS_DIR")
    p.add_argument("--families", nargs="+", help="curves to draw (default: all)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.replot:
        replot(args.replot)
        return
    if not args.compare or not args.out:
        p.error("--compare and --out, or --replot")
    runs = {}
    for item in args.compare:
        name, _, folder = item.partition("=")
        runs[name] = json.loads((Path(folder) / "accuracy.json").read_text())
    compare(runs, args.out, set(args.families) if args.families else None)
    for name, rows in runs.items():
        print(f"## {name}\n\n{table({'rows': rows})}\n")


if __name__ == "__main__":
    main()
