"""The batched control path against its specification, one `ControlStack` per request.

Random batches of requests with random controls go through random decode steps, with
vLLM's batch updates between them (requests added, finished, preempted and re-added,
moved, swapped) and repeated steps (vLLM's discarded chunked-prefill samples). At every
step both paths act on the same logits; the logits they leave, and every request's
events, must be the same.
"""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.control.helpers import END, EOS, INDUCE, START, WAIT, V
from thinkctl.control.batch import BatchControl
from thinkctl.control.spec import ControlSpec
from thinkctl.control.stack import ControlStack, apply_actions

CUE = 6
SLOTS = 6


class Probe:
    """A LYNX probe that exits on about half of the cues it scores."""

    cue_ids = frozenset({CUE})
    confidence = False

    def thresholds(self, delta: float) -> tuple[float, float]:
        return 0.5, 0.5

    def scorer(self):
        return lambda x: 1 / (1 + math.exp(-float(x.sum())))

    def scores(self, x: torch.Tensor) -> np.ndarray:
        return np.array([self.scorer()(row) for row in x])


def features(request: int, n: int) -> torch.Tensor:
    """The captured hidden state of a request at output length n (the same on both sides)."""
    return torch.randn(4, generator=torch.Generator().manual_seed(request * 1000 + n))


def random_spec(rnd) -> ControlSpec | None:
    raw: dict = {"think": (START, END)}
    if rnd.random() < 0.2:
        raw["mode"] = rnd.choice([[START], [INDUCE, START], [END]])
    if rnd.random() < 0.6:
        top = rnd.choice([None, rnd.randrange(0, 9)])
        low = rnd.randrange(0, 5) if top is None else rnd.randrange(0, top + 1)
        raw["budget"] = {"max": top, "min": low, "close": [END, INDUCE],
                         "wait": rnd.choice([[], [WAIT], [WAIT, WAIT]]),
                         "stop": rnd.choice([[], [END, EOS], [END]])}  # fmt: skip
    if rnd.random() < 0.5:
        raw["ts"] = {"strength": rnd.choice([0.5, 1.0, 2.0, 8.0]),
                     "form": rnd.choice(["log_odds", "temperature"])}  # fmt: skip
    if rnd.random() < 0.5:
        rule = ({"delta": 0.1} if rnd.random() < 0.5
                else {"threshold": rnd.random(), "max_accuracy_loss": 0.01})  # fmt: skip
        raw["lynx"] = {**rule, "close": [END, INDUCE], "min_thinking": rnd.randrange(4)}
    if rnd.random() < 0.1:
        return None  # no control at all
    return ControlSpec.model_validate(raw)


class Request:
    def __init__(self, rid: int, spec: ControlSpec | None, prompt: list[int]) -> None:
        self.rid, self.spec, self.prompt, self.out = rid, spec, prompt, []
        self.stack = spec.build(prompt, Probe()) if spec and spec.has_step_controllers else None
        self.seen = -1


def reference_step(rows: dict[int, Request], logits: torch.Tensor) -> None:
    """The specification: each request's own stack, then `apply_actions` for the batch."""
    actions = []
    for index, req in rows.items():
        if req.stack is None:
            continue
        n = len(req.out)
        fresh = n > 0 and n == req.seen + 1
        req.seen = n
        hidden = (lambda r=req.rid, n=n: features(r, n)) if fresh else None
        action = req.stack.step(req.out, logits[index].clone(), hidden)
        if not action.is_empty:
            actions.append((index, action))
    apply_actions(actions, logits)


def comparable(events) -> list:
    """Events without the probe's measured latency, which differs from run to run."""
    return [(e.controller, e.reason, e.at, e.tokens, tuple(kv for kv in e.detail
             if kv[0] != "latency_s"), e.note) for e in events]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_batched_path_acts_and_reports_as_one_stack_per_request(rnd):
    batch = BatchControl(Probe())
    rows: dict[int, Request] = {}  # batch row -> request
    parked: list[Request] = []
    step_events: dict[int, list] = {}
    next_id = 0
    for _ in range(40):
        # Batch updates, in vLLM's order: added, removed, moved.
        free = [i for i in range(SLOTS) if i not in rows]
        if free and rnd.random() < 0.5:
            index = rnd.choice(free)
            if parked and rnd.random() < 0.5:  # a preempted request comes back
                req = parked.pop(rnd.randrange(len(parked)))
            else:
                req = Request(next_id, random_spec(rnd), rnd.choice([[START], [], [7, START]]))
                next_id += 1
            rows[index] = req
            batch.add(index, req.spec, req.prompt, req.out, str(req.rid))
        if rows and rnd.random() < 0.15:
            index = rnd.choice(list(rows))
            req = rows.pop(index)
            batch.remove(index)
            if rnd.random() < 0.6:
                parked.append(req)  # preempted; otherwise finished
        if rows and rnd.random() < 0.3:
            a = rnd.choice(list(rows))
            b = rnd.randrange(SLOTS)
            if a != b:
                swap = b in rows
                if swap:
                    rows[a], rows[b] = rows[b], rows[a]
                else:
                    rows[b] = rows.pop(a)
                batch.move(a, b, swap)
        logits = torch.randn(
            SLOTS, V, generator=torch.Generator().manual_seed(rnd.randrange(10**6))
        )
        mine, ref = logits.clone(), logits.clone()

        def hidden(index: torch.Tensor, rows=rows) -> torch.Tensor:
            return torch.stack([features(rows[int(i)].rid, len(rows[int(i)].out)) for i in index])

        for rid, event in batch.step(mine, hidden).all():
            step_events.setdefault(int(rid), []).append(event)
        reference_step(rows, ref)
        assert torch.equal(mine, ref)
        if rnd.random() < 0.1:
            continue  # a discarded sample: the same step comes again
        noise = -torch.log(-torch.log(torch.rand(SLOTS, V, generator=torch.Generator()
                                                 .manual_seed(rnd.randrange(10**6)))))  # fmt: skip
        for index, req in rows.items():
            req.out.append(int((ref[index] + noise[index]).argmax()))
    for req in [*rows.values(), *parked]:
        if req.stack is not None:
            want = comparable(req.stack.events)
            assert comparable(step_events.get(req.rid, [])) == want


def test_a_batch_with_no_controlled_row_leaves_the_logits_alone():
    batch = BatchControl()
    batch.add(0, None, [START], [])
    logits = torch.randn(2, V)
    before = logits.clone()
    assert batch.step(logits) == ([], None) and torch.equal(logits, before)


def test_a_stack_built_for_a_row_is_its_specification():
    spec = ControlSpec(think=(START, END), budget={"max": 1, "close": [END, INDUCE]})
    assert isinstance(spec.build([START]), ControlStack)
    batch, out = BatchControl(), []
    batch.add(0, spec, [START], out, "r")
    for _ in range(4):
        logits = torch.zeros(1, V)
        logits[0, 7] = 1.0
        batch.step(logits)
        out.append(int(logits.argmax()))
    assert out == [7, END, INDUCE, 7]
    assert [(e.controller, e.reason, e.at) for e in batch.events(0)] == [("budget", "budget", 1)]
    assert np.array_equal(batch._rows, [0])


class Length:
    """A length predictor: 100 tokens natural and 10 sufficient, for every prompt."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def predict(self, x: torch.Tensor) -> np.ndarray:
        self.rows.append(len(x))
        return np.log1p(np.tile([100.0, 10.0], (len(x), 1)))


def query_spec(edges: list[float], budgets: list[int]) -> ControlSpec:
    return ControlSpec.model_validate({
        "think": (START, END),
        "budget": {"max": max(budgets), "close": [END, INDUCE],
                   "query": {"effort": 0.3, "edges": edges, "budgets": budgets}},
    })  # fmt: skip


def run_thinking(batch: BatchControl, out: list[int], steps: int, features=None):
    """Steps with one thinking token (7) each; returns each step's (forced token, events)."""
    seen = []
    for _ in range(steps):
        logits = torch.zeros(1, V)
        report = batch.step(logits, features)
        forced = int(logits[0].argmax()) if torch.isinf(logits[0]).sum() == V - 1 else None
        seen.append((forced, report.events))
        out.append(forced if forced is not None else 7)
    return seen


def test_a_per_query_budget_is_set_from_the_prompt_at_prefill_and_cuts_thinking():
    length, out = Length(), []
    batch = BatchControl(length=length)
    # Natural length 100 predicted: the bin [90, 150), budget 28. Thinking opens in the prompt.
    batch.add(0, query_spec([50.0, 90.0, 150.0], [5, 10, 28, 50]), [START], out, "r")
    steps = run_thinking(batch, out, 32, lambda rows: torch.zeros(len(rows), 4))
    assert length.rows == [1]  # predicted once, at the prefill step (no output yet)
    (rid, event), *_ = steps[1][1]  # settled with the first output token
    info = dict(event.detail)
    assert (rid, event.reason, info["max_thinking_tokens"]) == ("r", "query_budget", 28)
    assert info["predicted_natural_tokens"] == 100 and info["predicted_sufficient_tokens"] == 10
    # Thinking holds 28 tokens before the 29th step, which forces the close.
    assert [i for i, (tok, _) in enumerate(steps) if tok == END] == [28]
    assert steps[28][1][0][1].reason == "budget"


def test_without_a_capture_the_largest_budget_holds():
    out = []
    batch = BatchControl(length=Length())
    batch.add(0, query_spec([50.0], [2, 5]), [START], out, "r")
    steps = run_thinking(batch, out, 8, features=None)
    assert dict(steps[1][1][0][1].detail)["max_thinking_tokens"] == 5
    assert [i for i, (tok, _) in enumerate(steps) if tok == END] == [5]


def test_a_per_query_budget_never_goes_below_the_requests_minimum():
    spec = ControlSpec.model_validate({
        "think": (START, END),
        "budget": {"max": 50, "min": 12, "close": [END, INDUCE], "stop": [END, EOS],
                   "query": {"effort": 0.1, "edges": [50.0], "budgets": [50, 0]}},
    })  # fmt: skip
    out = []
    batch = BatchControl(length=Length())  # 100 natural tokens predicted: the budget-0 bin
    batch.add(0, spec, [START], out, "r")
    steps = run_thinking(batch, out, 16, lambda rows: torch.zeros(len(rows), 4))
    assert dict(steps[1][1][0][1].detail)["max_thinking_tokens"] == 12
    assert [i for i, (tok, _) in enumerate(steps) if tok == END] == [12]
