import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.control.helpers import DELIMS, END, EOS, INDUCE, START, WAIT, V, logits
from thinkctl.control.base import Action, StepView
from thinkctl.control.budget import BudgetController, BudgetParams
from thinkctl.control.phase import Phase
from thinkctl.control.stack import ControlStack, apply_action, apply_actions

CLOSE = (END, INDUCE, INDUCE + 1)


class Fixed:
    """A controller that always returns the same action."""

    def __init__(self, name: str, action: Action) -> None:
        self.name, self.action = name, action

    def decide(self, view: StepView) -> Action:
        return self.action


def run(stack: ControlStack, steps: int, model_token: int = 7, repeat: bool = False) -> list[int]:
    """Drive the stack like the engine: sample the argmax of the processed row."""
    out: list[int] = []
    for _ in range(steps):
        for _ in range(2 if repeat else 1):  # a discarded sample re-runs the same step
            row = logits(model_token)
            apply_action(stack.step(out, row), row)
        out.append(int(row.argmax()))
    return out


def test_maximum_closes_thinking_with_the_whole_sequence():
    stack = ControlStack(
        [BudgetController(BudgetParams(max_thinking=3, close=CLOSE))], DELIMS, [START]
    )
    out = run(stack, 8)
    assert out == [7, 7, 7, *CLOSE, 7, 7]
    assert stack.tracker.thinking_tokens == 3 and stack.tracker.closed_at == 3
    assert [(e.reason, e.at, e.tokens) for e in stack.events] == [("budget", 3, CLOSE)]


@given(st.integers(0, 6), st.booleans())
def test_forced_sequence_is_emitted_exactly_once_even_when_steps_repeat(budget, repeat):
    stack = ControlStack(
        [BudgetController(BudgetParams(max_thinking=budget, close=CLOSE))], DELIMS, [START]
    )
    out = run(stack, budget + len(CLOSE) + 3, repeat=repeat)
    assert out[budget : budget + len(CLOSE)] == list(CLOSE)
    assert out.count(END) == 1 and out.count(INDUCE) == 1
    assert len(stack.events) == 1


def test_minimum_turns_a_stop_into_wait():
    params = BudgetParams(min_thinking=4, wait=(WAIT,), stop_ids=frozenset({END, EOS}))
    stack = ControlStack([BudgetController(params)], DELIMS, [START])
    out = run(stack, 6, model_token=END)  # the model wants to stop at once
    assert out[:4] == [WAIT] * 4 and out[4] == END
    assert [e.reason for e in stack.events] == ["budget_min"] * 4


def test_precedence_force_beats_ban_and_bans_union_and_shifts_add():
    a = Fixed("a", Action(ban=frozenset({1}), shift=((6, 1.0),)))
    b = Fixed("b", Action(ban=frozenset({2}), shift=((6, 0.5), (8, -1.0))))
    merged = ControlStack([a, b], DELIMS).step([], logits())
    assert merged.ban == {1, 2} and dict(merged.shift) == {6: 1.5, 8: -1.0}
    forcing = Fixed("f", Action(force=(9, 8), reason="x"))
    first = ControlStack([a, forcing, Fixed("g", Action(force=(5,)))], DELIMS).step([], logits())
    assert first.force == (9,) and not first.ban


@given(st.lists(st.sampled_from(["leave", "ban", "shift", "both"]), min_size=1, max_size=4))
def test_one_acting_controller_acts_exactly_as_a_merge_would(kinds):
    # The stack passes a lone acting controller's action through unmerged: the logits it
    # yields must equal those of the same action merged with empty ones.
    made = {"leave": Action(), "ban": Action(ban=frozenset({2})),
            "shift": Action(shift=((6, 1.5), (6, 0.5)), reason="s"),
            "both": Action(ban=frozenset({4}), shift=((8, -1.0),))}  # fmt: skip
    stack = ControlStack([Fixed(str(i), made[k]) for i, k in enumerate(kinds)], DELIMS)
    got = logits()
    apply_action(stack.step([], got), got)
    want = logits()
    for k in kinds:
        apply_action(made[k], want)
    assert torch.equal(got, want)


def test_apply_action_masks_everything_but_the_forced_token():
    row = logits(3)
    apply_action(Action(force=(6,)), row)
    assert int(row.argmax()) == 6 and row.isinf().sum() == V - 1
    row = logits(3)
    apply_action(Action(ban=frozenset({3}), shift=((4, 2.0),)), row)
    assert row[3] == float("-inf") and row[4] == 2.0


def reference(action: Action, row: torch.Tensor) -> None:
    """One row at a time, token by token: what the batched application must equal."""
    if action.force:
        row.fill_(float("-inf"))
        row[action.force[0]] = 0.0
        return
    for tok in action.ban:
        row[tok] = float("-inf")
    for tok, delta in action.shift:
        row[tok] += delta


tokens = st.integers(0, V - 1)
actions = st.one_of(
    st.builds(lambda f: Action(force=f), st.tuples(tokens, tokens)),
    st.builds(
        lambda ban, shift: Action(ban=frozenset(ban), shift=tuple(shift.items())),
        st.sets(tokens, max_size=3),
        st.dictionaries(tokens, st.floats(-5, 5), max_size=3),
    ),
)


@given(st.dictionaries(st.integers(0, 5), actions, max_size=6))
def test_batched_actions_equal_row_by_row_application(by_row):
    torch.manual_seed(0)
    batch = torch.randn(6, V)
    want = batch.clone()
    for index, action in by_row.items():
        reference(action, want[index])
    apply_actions(list(by_row.items()), batch)
    assert torch.equal(batch, want)


def test_no_controller_leaves_logits_alone():
    stack = ControlStack([], DELIMS, [START])
    assert stack.step([7, 7], logits()).is_empty
    assert stack.tracker.phase is Phase.THINKING and stack.tracker.thinking_tokens == 2
