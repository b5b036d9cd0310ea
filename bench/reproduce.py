"""Does a rerun of `thinkctl bench accuracy` reproduce a committed `accuracy.json`?

    python -m thinkctl.bench.reproduce bench/results/accuracy.json RERUN/accuracy.json

For each setting in both files: the rerun's accuracy against the committed 95 % interval
(and the committed accuracy against the rerun's), and both mean thinking-token counts.
A row reproduces when each accuracy lies inside the other's interval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def compare(committed: list[dict], rerun: list[dict]) -> tuple[list[str], int]:
    """Markdown table lines, and how many shared settings fail to reproduce."""
    new = {r["setting"]: r for r in rerun}
    lines = [
        "| setting | committed accuracy (95 % CI) | rerun accuracy (95 % CI) | committed / rerun "
        "thinking | reproduces |",
        "|---|---|---|---|---|",
    ]
    misses = 0
    for old in committed:
        r = new.get(old["setting"])
        if r is None:
            continue
        (lo, hi), (rlo, rhi) = old["accuracy_ci95"], r["accuracy_ci95"]
        ok = lo <= r["accuracy"] <= hi and rlo <= old["accuracy"] <= rhi
        misses += not ok
        lines.append(
            f"| {old['setting']} | {old['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) | "
            f"{r['accuracy']:.3f} ({rlo:.3f}–{rhi:.3f}) | "
            f"{old['mean_thinking_tokens']:.1f} / {r['mean_thinking_tokens']:.1f} | "
            f"{'yes' if ok else '**no**'} |"
        )
    return lines, misses


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("committed", type=Path)
    p.add_argument("rerun", type=Path)
    args = p.parse_args(argv)
    lines, misses = compare(json.loads(args.committed.read_text()),
                            json.loads(args.rerun.read_text()))  # fmt: skip
    print("\n".join(lines))
    print(f"\n{misses} setting(s) outside the other run's interval")


if __name__ == "__main__":
    main()
