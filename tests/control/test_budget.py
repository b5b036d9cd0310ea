import pytest

from tests.control.helpers import END, EOS, INDUCE, WAIT, logits
from thinkctl.control.base import StepView
from thinkctl.control.budget import BudgetController, BudgetParams
from thinkctl.control.phase import Phase

CLOSE = (END, INDUCE)
STOP = frozenset({END, EOS})


def view(thinking: int, top: int | None = None, phase: Phase = Phase.THINKING) -> StepView:
    return StepView(n_output=thinking, phase=phase, thinking_tokens=thinking, logits=logits(top))


def test_maximum_forces_close_and_inducer():
    c = BudgetController(BudgetParams(max_thinking=4, close=CLOSE))
    assert c.decide(view(3)).is_empty
    action = c.decide(view(4))
    assert action.force == CLOSE and action.reason == "budget"


def test_zero_budget_closes_at_once():
    assert (
        BudgetController(BudgetParams(max_thinking=0, close=CLOSE)).decide(view(0)).force == CLOSE
    )


def test_minimum_bans_stops_and_injects_wait_when_a_stop_would_win():
    c = BudgetController(BudgetParams(min_thinking=5, wait=(WAIT,), stop_ids=STOP))
    assert c.decide(view(2, top=7)).ban == STOP
    for stop in STOP:
        action = c.decide(view(2, top=stop))
        assert action.force == (WAIT,) and action.reason == "budget_min"
    assert c.decide(view(5, top=END)).is_empty  # the minimum is met


def test_wait_never_pushes_thinking_past_the_maximum():
    c = BudgetController(
        BudgetParams(max_thinking=6, min_thinking=6, close=CLOSE, wait=(WAIT, WAIT), stop_ids=STOP)
    )
    assert c.decide(view(4, top=END)).force == (WAIT, WAIT)
    action = c.decide(view(5, top=END))  # 5 + 2 > 6: ban only, the maximum closes next step
    assert not action.force and action.ban == STOP


def test_outside_thinking_does_nothing():
    c = BudgetController(BudgetParams(max_thinking=0, min_thinking=0, close=CLOSE))
    assert c.decide(view(0, phase=Phase.ANSWER)).is_empty
    assert c.decide(view(0, phase=Phase.BEFORE)).is_empty


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_thinking=-1, close=CLOSE),
        dict(min_thinking=-1),
        dict(max_thinking=3, min_thinking=4, close=CLOSE),
        dict(max_thinking=3),
    ],
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        BudgetParams(**kwargs)
