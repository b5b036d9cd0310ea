"""Train and calibrate a LYNX probe on recorded cue events, and replay its exits.

Splits are by question (no question contributes events to two splits): the probe is
fitted on `train`, the conformal scores come from `cal`, and everything reported comes
from `test`. Exits are replayed offline exactly as the server takes them: at the first
cue whose prediction set is {1}, thinking ends there (cue included) and the forced-exit
label says whether the answer is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from calibration.traces import Traces
from probes import probe as probe_lib
from probes.conformal import Calibration, Thresholds
from probes.effort_table import GRID_STEP, budget_for

SPLITS = {"train": 0.5, "cal": 0.3, "test": 0.2}


def split_questions(n_questions: int, seed: int) -> dict[str, np.ndarray]:
    """Boolean masks over question indices."""
    order = np.random.default_rng(seed).permutation(n_questions)
    cut1 = int(SPLITS["train"] * n_questions)
    cut2 = cut1 + int(SPLITS["cal"] * n_questions)
    masks = {name: np.zeros(n_questions, bool) for name in SPLITS}
    masks["train"][order[:cut1]] = True
    masks["cal"][order[cut1:cut2]] = True
    masks["test"][order[cut2:]] = True
    return masks


@dataclass
class Fitted:
    probe: probe_lib.Probe
    kind: str
    confidence: bool  # reads the last column (probes/confidence.py) too
    auc_val: dict[str, float]  # validation AUC of each candidate tried
    others: dict[str, tuple[probe_lib.Probe, bool]]  # every candidate, by name

    def prob(self, x: np.ndarray) -> np.ndarray:
        """Scores of full recorded features (the confidence column dropped if unused)."""
        return self.probe.prob(columns(x, self.confidence))


def columns(x: np.ndarray, confidence: bool) -> np.ndarray:
    """Recorded features hold the confidence value last; hidden-only probes drop it."""
    return x if confidence else x[:, :-1]


def fit_best(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, confidence: tuple[bool, ...]
) -> Fitted:
    """Fit an MLP (LYNX's) and logistic regression (the baseline), on the hidden state
    alone and/or with the confidence value (`confidence` says which; `x` holds that value
    last), on 80% of the training questions; keep the best AUC on the other 20%."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    val_q = set(rng.choice(uniq, size=max(1, len(uniq) // 5), replace=False).tolist())
    val = np.array([g in val_q for g in groups])
    results = {}
    for conf in confidence:
        xc = columns(x, conf)
        for kind in ("mlp", "logreg"):
            pipe = probe_lib.fit(xc[~val], y[~val], kind, seed)  # type: ignore[arg-type]
            exported = probe_lib.export(pipe)
            name = kind + ("+confidence" if conf else "")
            results[name] = (roc_auc_score(y[val], exported.prob(xc[val])), exported, kind, conf)
    best = max(results, key=lambda k: results[k][0])
    _, probe, kind, conf = results[best]
    return Fitted(
        probe, kind, conf,
        {k: round(float(v[0]), 4) for k, v in results.items()},
        {k: (v[1], v[3]) for k, v in results.items()},
    )  # fmt: skip


@dataclass
class Replay:
    accuracy: float
    mean_thinking_tokens: float
    exit_rate: float  # share of traces that exited early
    premature_exit_rate_trajectory: float  # share of traces whose exit answered wrong


def replay(traces: Traces, trace_ids: np.ndarray, exits: np.ndarray, floor: int = 0) -> Replay:
    """Offline LYNX on the given traces; `exits[j]` says whether event j would exit.

    `floor`: exits wait until thinking holds that many tokens, the cue included."""
    ev = traces.events
    first = _first_exits(traces, exits, floor)
    correct, early, wrong = [], 0, 0
    for t in trace_ids:
        j = first.get(int(t))
        if j is None:
            correct.append(bool(traces.correct[t]))
        else:
            early += 1
            wrong += int(ev.label[j] != 1)
            correct.append(ev.label[j] == 1)
    tokens = _lengths(traces, trace_ids, first)
    n = max(len(trace_ids), 1)
    return Replay(float(np.mean(correct)), float(np.mean(tokens)), early / n, wrong / n)


def _first_exits(traces: Traces, exits: np.ndarray, floor: int = 0) -> dict[int, int]:
    """Trace -> the event of its first exiting cue at or past `floor` thinking tokens."""
    ev = traces.events
    exits = exits & (ev.position + 1 >= floor)
    first: dict[int, int] = {}
    for j in np.argsort(ev.trace * 1_000_000 + ev.position, kind="stable"):
        if exits[j]:
            first.setdefault(int(ev.trace[j]), int(j))
    return first


def _lengths(traces: Traces, trace_ids: np.ndarray, first: dict[int, int]) -> list[int]:
    """Thinking tokens per trace: up to its exit's cue (emitted before the exit), or all."""
    pos = traces.events.position
    return [int(pos[first[int(t)]]) + 1 if int(t) in first else int(traces.thinking_tokens[t])
            for t in trace_ids]  # fmt: skip


def oracle(traces: Traces, trace_ids: np.ndarray) -> Replay:
    """The earliest cue whose forced exit answers right, per trace (no policy can beat it)."""
    return replay(traces, trace_ids, traces.events.label == 1)


def ceiling(traces: Traces, trace_ids: np.ndarray, p: np.ndarray, max_loss: float = 0.01) -> dict:
    """The most thinking any one threshold on the probe's score saves on these traces while
    keeping accuracy within `max_loss` of natural, the threshold chosen on the same traces.

    Every δ exits at the first cue whose score clears max(q0, 1 - q1): one threshold on
    the same score. So this hindsight optimum bounds what any δ could give this probe on
    these traces; a target above it needs a better probe, not another δ. `p` is -1 where
    an event may not exit (malformed label)."""
    ev = traces.events
    on = np.isin(ev.trace, trace_ids)
    order = np.where(on)[0][np.lexsort((ev.position[on], ev.trace[on]))]
    tr = ev.trace[order]
    # Scores as ranks among the candidate thresholds (-1: exit at every first cue), so that
    # the arithmetic below is exact; "score > t" becomes "rank > index of t".
    thresholds = np.unique(np.r_[-1.0, p[order]])
    rank = np.searchsorted(thresholds, p[order])
    # The highest rank among a trace's earlier cues: event j is its trace's first exit for
    # exactly the thresholds from that one up to, not including, its own. Offsetting by
    # the trace's index lets one running maximum restart at each trace.
    starts = np.r_[True, tr[1:] != tr[:-1]]
    offset = np.cumsum(starts) * len(thresholds)
    running = np.maximum.accumulate(rank + offset) - offset
    before = np.where(starts, -1, np.r_[-1, running[:-1]])
    natural_len = traces.thinking_tokens[tr].astype(float)
    saved = natural_len - (ev.position[order] + 1)
    gained = (ev.label[order] == 1).astype(float) - traces.correct[tr]
    n = len(trace_ids)
    base_tokens = float(traces.thinking_tokens[trace_ids].sum())
    base_correct = float(traces.correct[trace_ids].sum())
    best = {"threshold": None, "accuracy": base_correct / n,
            "mean_thinking_tokens": base_tokens / n, "savings": 0.0}  # fmt: skip
    for i, t in enumerate(thresholds):
        first = (rank > i) & (before <= i)
        lost, cut = -gained[first].sum(), saved[first].sum()
        # Counted in traces, so that "within one point" is not at the mercy of rounding.
        if lost <= max_loss * n + 1e-9 and cut / base_tokens > best["savings"]:
            best = {"threshold": float(t), "accuracy": float((base_correct - lost) / n),
                    "mean_thinking_tokens": float((base_tokens - cut) / n),
                    "savings": float(cut / base_tokens)}  # fmt: skip
    return {**best, "max_accuracy_loss": max_loss}


def event_premature_rate(th: Thresholds, p: np.ndarray, y: np.ndarray) -> float:
    """Share of class-0 events (exiting is wrong) where the policy exits."""
    neg = y == 0
    return float(th.exits_many(p[neg]).mean()) if neg.any() else float("nan")


def effort_points(
    cal: Calibration,
    traces: Traces,
    trace_ids: np.ndarray,
    p_all: np.ndarray,
    deltas: list[float],
    grid: list[float],
) -> list[dict]:
    """Effort e -> (delta, cap, floor) so that e spends about e x the natural thinking length.

    Per e: the smallest delta (the safest) whose replayed mean thinking is within e of
    natural. When that delta thinks less than e - GRID_STEP of natural (high efforts), it
    is kept and the smallest floor (no exit before that many thinking tokens) that brings
    the mean up to e x natural is added, so that a higher effort really thinks longer.
    When no delta on the grid gets down to e, the largest delta plus the budget cap that
    brings the rest down (the effort table's rule on the LYNX-shortened lengths). e = 0
    means no thinking; e = 1 means no LYNX exit.
    """
    natural = float(traces.thinking_tokens[trace_ids].mean())
    exits = {d: cal.thresholds(d).exits_many(p_all) for d in deltas}
    means = {d: replay(traces, trace_ids, exits[d]).mean_thinking_tokens for d in deltas}
    points = []
    for e in grid:
        point = {"effort": e, "delta": None, "max_thinking_tokens": None,
                 "min_thinking_tokens": 0}  # fmt: skip
        if e <= 0:
            point["max_thinking_tokens"] = 0
        elif e < 1:
            ok = [d for d in sorted(deltas) if means[d] <= e * natural + 1e-9]
            if ok:
                d = point["delta"] = ok[0]
                if means[d] < (e - GRID_STEP) * natural:
                    point["min_thinking_tokens"] = floor_for(traces, trace_ids, exits[d],
                                                             e * natural)  # fmt: skip
            else:
                d = max(deltas)
                lengths = _lengths(traces, trace_ids, _first_exits(traces, exits[d]))
                point["delta"] = d
                point["max_thinking_tokens"] = int(
                    budget_for(lengths, e * natural / max(np.mean(lengths), 1e-9))
                )
        points.append(point)
    return points


def effort_replay(
    cal: Calibration, traces: Traces, trace_ids: np.ndarray, p_all: np.ndarray, point: dict
) -> dict:
    """What an effort point spends on these traces, and how accurate it is where the
    replay can tell (a cap cuts thinking between cues, where no forced exit was labelled)."""
    natural = float(traces.thinking_tokens[trace_ids].mean())
    d, cap = point["delta"], point["max_thinking_tokens"]
    exits = cal.thresholds(d).exits_many(p_all) if d else np.zeros(len(p_all), bool)
    if cap is None:
        r = replay(traces, trace_ids, exits, point["min_thinking_tokens"])
        tokens, accuracy = r.mean_thinking_tokens, r.accuracy
    else:
        lengths = _lengths(traces, trace_ids, _first_exits(traces, exits))
        tokens = float(np.minimum(lengths, cap).mean())
        accuracy = None
    share = tokens / natural if natural else 0.0
    return {"effort": point["effort"], "mean_thinking_tokens": tokens,
            "share_of_natural": share, "accuracy": accuracy}  # fmt: skip


def floor_for(traces: Traces, trace_ids: np.ndarray, exits: np.ndarray, target: float) -> int:
    """The smallest floor whose replayed mean thinking reaches `target` tokens.

    A higher floor only moves a trace's exit to a later cue or removes it, so the mean
    is non-decreasing in the floor: bisect the integers."""
    lo, hi = 0, int(traces.thinking_tokens[trace_ids].max(initial=0)) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if replay(traces, trace_ids, exits, mid).mean_thinking_tokens >= target - 1e-9:
            hi = mid
        else:
            lo = mid + 1
    return lo


def resplit_event_rates(
    p: np.ndarray,
    y: np.ndarray,
    question: np.ndarray,
    pool: np.ndarray,
    deltas: list[float],
    n_splits: int = 200,
    seed: int = 0,
) -> dict[float, tuple[float, float, float]]:
    """Class-0 exit rate over many random cal/test re-splits of the same questions.

    The guarantee bounds the *expected* rate; one held-out split scatters around it
    (events of one question are correlated, so the scatter is wide). Averaging over
    re-splits (same cal/test proportions, by question) estimates the expectation, and
    the share of re-splits within delta + 1/(n0 + 1) says how often one split passes.
    Returns delta -> (mean, standard deviation, share within the bound).
    """
    rng = np.random.default_rng(seed)
    qs = np.unique(question[pool])
    n_cal = int(len(qs) * SPLITS["cal"] / (SPLITS["cal"] + SPLITS["test"]))
    rates: dict[float, list[float]] = {d: [] for d in deltas}
    within: dict[float, list[bool]] = {d: [] for d in deltas}
    for _ in range(n_splits):
        cal_q = rng.permutation(qs)[:n_cal]
        in_cal = np.isin(question, cal_q)
        cal = Calibration.from_probs(p[pool & in_cal], y[pool & in_cal])
        neg = pool & ~in_cal & (y == 0)
        for d in deltas:
            rate = float(cal.thresholds(d).exits_many(p[neg]).mean())
            rates[d].append(rate)
            within[d].append(rate <= d + 1 / (cal.n0 + 1))
    return {d: (float(np.mean(r)), float(np.std(r)), float(np.mean(within[d])))
            for d, r in rates.items()}  # fmt: skip
