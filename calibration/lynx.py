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

from thinkctl.calibration.risk import ExitTable
from thinkctl.calibration.traces import Traces
from thinkctl.probes import probe as probe_lib
from thinkctl.probes.conformal import Calibration, Thresholds
from thinkctl.probes.effort_table import budget_for

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


def replay(traces: Traces, trace_ids: np.ndarray, exits: np.ndarray) -> Replay:
    """Offline LYNX on the given traces; `exits[j]` says whether event j would exit."""
    ev = traces.events
    first = _first_exits(traces, exits)
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


def _first_exits(traces: Traces, exits: np.ndarray) -> dict[int, int]:
    """Trace -> the event of its first exiting cue."""
    ev = traces.events
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


def effort_points(table: ExitTable, certified: dict[float, int], grid: list[float]) -> list[dict]:
    """Effort e -> a score threshold (and a cap below what thresholds reach) so that e
    spends about e x the natural thinking length on the calibration traces of `table`.

    Per e: the safest (highest) threshold whose replayed mean thinking is at most e x
    natural. A lower threshold only moves a trace's exit to an earlier cue, so mean
    thinking falls along the table's columns, and as e falls the chosen column can only
    move on: thinking never rises as effort falls, by construction. Below the lowest
    threshold's mean, that threshold plus the effort table's cap on its lengths
    (probes/effort_table.py; the cap is non-decreasing in e). e = 0 means no thinking;
    e = 1 no exit. `certified` (epsilon -> how many columns Learn-then-Test certified)
    gives each point the smallest answer-level risk its threshold is certified at.
    """
    tokens = table.tokens.mean(axis=0)
    natural, last = float(tokens[0]), len(tokens) - 1
    points = []
    for e in grid:
        point = {"effort": e, "threshold": None, "max_thinking_tokens": None,
                 "max_accuracy_loss": None}  # fmt: skip
        if e <= 0:
            point["max_thinking_tokens"] = 0
        elif e < 1:
            reach = np.flatnonzero(tokens <= e * natural + 1e-9)
            col = int(reach[0]) if len(reach) else last
            if not len(reach):
                share = e * natural / max(float(tokens[col]), 1e-9)
                point["max_thinking_tokens"] = int(budget_for(table.tokens[:, col], share))
            if col > 0:  # column 0 never exits
                point["threshold"] = float(table.thresholds[col])
                safe = [eps for eps, n in certified.items() if col < n]
                point["max_accuracy_loss"] = min(safe) if safe else None
        points.append(point)
    return points


def effort_replay(table: ExitTable, point: dict) -> dict:
    """What an effort point spends on the traces of `table`, and how accurate it is where
    the replay can tell (a cap cuts thinking between cues, where no exit was labelled)."""
    natural = float(table.tokens[:, 0].mean())
    t, cap = point["threshold"], point["max_thinking_tokens"]
    col = 0 if t is None else int(np.flatnonzero(table.thresholds == t)[0])
    if cap is None:
        tokens, accuracy = float(table.tokens[:, col].mean()), float(table.correct[:, col].mean())
    else:
        tokens, accuracy = float(np.minimum(table.tokens[:, col], cap).mean()), None
    share = tokens / natural if natural else 0.0
    return {"effort": point["effort"], "mean_thinking_tokens": tokens,
            "share_of_natural": share, "accuracy": accuracy}  # fmt: skip


def resplit_event_rates(
    p: np.ndarray,
    y: np.ndarray,
    question: np.ndarray,
    pool: np.ndarray,
    deltas: list[float],
    n_splits: int = 200,
    seed: int = 0,
) -> dict[float, dict[str, float]]:
    """Class-0 exit rates over many random cal/test re-splits of the same questions.

    The guarantee bounds an *expected* rate; one held-out split scatters around it (events
    of one question are correlated, so the scatter is wide). Each re-split calibrates as
    the command does (cluster-aware, probes/conformal.py) on its cal questions and
    measures on the rest: the share of class-0 events that exit (`event`), and the share of
    questions with a class-0 event where some class-0 event exits (`question`, what the
    guarantee is about). Returns delta -> their means over the re-splits, the event
    rate's standard deviation, and the share of re-splits whose event rate is <= delta.
    """
    rng = np.random.default_rng(seed)
    qs = np.unique(question[pool])
    n_cal = int(len(qs) * SPLITS["cal"] / (SPLITS["cal"] + SPLITS["test"]))
    rates: dict[float, list[tuple[float, float]]] = {d: [] for d in deltas}
    for _ in range(n_splits):
        in_cal = np.isin(question, rng.permutation(qs)[:n_cal])
        cal = Calibration.from_probs(p[pool & in_cal], y[pool & in_cal],
                                     question[pool & in_cal])  # fmt: skip
        neg = pool & ~in_cal & (y == 0)
        q_neg = np.unique(question[neg], return_inverse=True)[1]
        for d in deltas:
            out = cal.thresholds(d).exits_many(p[neg])
            by_q = np.bincount(q_neg, weights=out) > 0
            rates[d].append((float(out.mean()), float(by_q.mean())))
    summary = {}
    for d, r in rates.items():
        event, by_question = np.asarray(r).T
        summary[d] = {"event_mean": float(event.mean()), "event_sd": float(event.std()),
                      "question_mean": float(by_question.mean()),
                      "share_within_delta": float(np.mean(event <= d))}  # fmt: skip
    return summary
