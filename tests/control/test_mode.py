from tests.control.helpers import DELIMS, END, INDUCE, START
from tests.control.test_stack import run
from thinkctl.control.budget import BudgetController, BudgetParams
from thinkctl.control.mode import ModeController, ModeParams
from thinkctl.control.stack import ControlStack


def test_prefix_is_forced_first_and_wins_over_a_budget():
    stack = ControlStack(
        [
            ModeController(ModeParams((END,))),
            BudgetController(BudgetParams(max_thinking=0, close=(END, INDUCE))),
        ],
        DELIMS,
        [START],
    )
    out = run(stack, 4)
    assert out == [END, 7, 7, 7]  # the budget never fires: thinking closed by the prefix
    assert [(e.controller, e.reason, e.at) for e in stack.events] == [("mode", "mode", 0)]


def test_a_longer_prefix_is_emitted_whole_then_the_model_goes_on():
    stack = ControlStack([ModeController(ModeParams((START, 5, 6)))], DELIMS)
    assert run(stack, 5, repeat=True) == [START, 5, 6, 7, 7]
