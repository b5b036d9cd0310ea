"""How much a per-query budget could gain over the global cap on the testbed (#22's question).

    python bench/results/notes/per_query_headroom.py   # from the repository root

Reads the shipped probe's calibration traces (testbed/model/probe/work, made by the command
in testbed/model/probe/report.md; git ignores them). Budgets replay as the issue describes:
a trace longer than its budget exits at its last cue at or before the budget (its forced
exit's label says whether that answers right; no cue before it: wrong, at the budget's cost).
The stand-in predictor is the question's number of steps, read from the prompt: what a
length predictor on the prompt's hidden state would have to recover. Questions are split in
halves; budgets are chosen on one (per number of steps, a Lagrangian sweep at no more than
the global cap's spend) and scored on the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from thinkctl.calibration import datasets, traces

WORK = Path("testbed/model/probe/work")
EFFORTS = (0.3, 0.5, 0.7)


def main() -> None:
    tr = traces.concat([traces.load(p) for p in sorted(WORK.glob("shard-*.safetensors"))])
    data = datasets.load("testbed:8000")
    steps = np.array([data.questions[i].count(";") for i in tr.question])
    natural, right = tr.thinking_tokens.astype(float), tr.correct.astype(bool)
    n = len(natural)
    ev = tr.events
    order = np.lexsort((ev.position, ev.trace))
    at, pos, label = ev.trace[order], ev.position[order] + 1, ev.label[order]
    lo, hi = np.searchsorted(at, np.arange(n)), np.searchsorted(at, np.arange(n), side="right")
    cues = [(pos[a:b], label[a:b]) for a, b in zip(lo, hi, strict=True)]
    sufficient = np.array([p[lab == 1][0] if (lab == 1).any() else natural[i]
                           for i, (p, lab) in enumerate(cues)])  # fmt: skip

    def replay(budget: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok, cost = right.copy(), natural.copy()
        for i in np.flatnonzero(natural > budget):
            p, lab = cues[i]
            k = np.searchsorted(p, budget[i], side="right") - 1
            ok[i], cost[i] = (False, budget[i]) if k < 0 else (lab[k] == 1, p[k])
        return ok, cost

    rng = np.random.default_rng(0)
    qs = np.unique(tr.question)
    rng.shuffle(qs)
    cal = np.isin(tr.question, qs[: len(qs) // 2])
    test = ~cal
    grid = np.arange(0, int(natural.max()) + 2, 2)
    runs = [replay(np.full(n, b, float)) for b in grid]
    groups = np.unique(steps)
    curves = {g: np.array([(ok[cal & (steps == g)].sum(), c[cal & (steps == g)].sum())
                           for ok, c in runs]) for g in groups}  # fmt: skip
    print(f"{n} traces; natural accuracy {right.mean():.3f}, mean thinking {natural.mean():.1f}, "
          f"mean sufficient {sufficient.mean():.1f}; Spearman with the number of steps: "
          f"natural {spearmanr(steps, natural)[0]:.3f}, sufficient "
          f"{spearmanr(steps, sufficient)[0]:.3f}")  # fmt: skip
    print("| effort | global cap | test accuracy, mean thinking | per-steps budgets "
          "| test accuracy, mean thinking |\n|---|---|---|---|---|")  # fmt: skip
    for e in EFFORTS:
        target = e * natural[cal].mean()
        k = next(j for j, (_, c) in enumerate(runs) if c[cal].mean() >= target)
        ok_g, c_g = runs[k]
        best = None
        for lam in np.linspace(0, 0.05, 501):
            pick = {g: int(np.argmax(curves[g][:, 0] - lam * curves[g][:, 1])) for g in groups}
            spend = sum(curves[g][pick[g], 1] for g in groups) / cal.sum()
            acc = sum(curves[g][pick[g], 0] for g in groups) / cal.sum()
            if spend <= target and (best is None or acc > best[0]):
                best = (acc, pick)
        budgets = {int(g): int(grid[best[1][g]]) for g in groups}
        ok_q, c_q = replay(np.array([budgets[int(s)] for s in steps], float))
        print(
            f"| {e} | {grid[k]} | {ok_g[test].mean():.3f}, {c_g[test].mean():.1f} | "
            f"{budgets} | {ok_q[test].mean():.3f}, {c_q[test].mean():.1f} |"
        )


if __name__ == "__main__":
    main()
