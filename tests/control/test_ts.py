import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.control.helpers import DELIMS, END, START, V
from thinkctl.control.base import StepView
from thinkctl.control.phase import Phase
from thinkctl.control.stack import ControlStack, apply_action
from thinkctl.control.ts import TSController, TSParams

rows = st.lists(st.floats(-20, 20), min_size=V, max_size=V).map(torch.tensor)


def shifted(row: torch.Tensor, params: TSParams, phase: Phase = Phase.THINKING) -> torch.Tensor:
    out = row.clone()
    apply_action(TSController(params).decide(StepView(0, phase, 0, row)), out)
    return out


@given(rows, st.floats(0.05, 20))
def test_log_odds_moves_only_the_end_token_in_the_right_direction(row, s):
    p, q = row.softmax(-1), shifted(row, TSParams(END, s)).softmax(-1)
    others = torch.arange(V) != END
    # The other tokens keep their proportions: only the end token's mass changes.
    assert torch.allclose(q[others] / q[others].sum(), p[others] / p[others].sum(), atol=1e-5)
    expected = s * p[END] / (1 - p[END] + s * p[END])
    assert math.isclose(q[END], expected, rel_tol=1e-3, abs_tol=1e-6)
    if s > 1:
        assert q[END] >= p[END] - 1e-6
    elif s < 1:
        assert q[END] <= p[END] + 1e-6


@given(rows, st.floats(0.1, 10))
def test_temperature_form_divides_the_end_logit(row, t):
    out = shifted(row, TSParams(END, t, "temperature"))
    assert math.isclose(out[END], row[END] / t, rel_tol=1e-4, abs_tol=1e-4)
    others = torch.arange(V) != END
    assert torch.equal(out[others], row[others])


def test_acts_only_while_thinking_and_not_at_strength_one():
    row = torch.zeros(V)
    assert torch.equal(shifted(row, TSParams(END, 4.0), Phase.ANSWER), row)
    assert torch.equal(shifted(row, TSParams(END, 1.0)), row)


@pytest.mark.parametrize("s", [0.0, -1.0, float("inf")])
def test_bad_strength_is_refused(s):
    with pytest.raises(ValueError):
        TSParams(END, s)


def test_an_exit_the_shift_helped_is_reported_as_a_ts_event():
    stack = ControlStack([TSController(TSParams(END, 50.0))], DELIMS, [START])
    out: list[int] = []
    for _ in range(3):
        row = torch.zeros(V)
        row[7] = 1.0  # the model prefers token 7, but a large TS makes the end win
        apply_action(stack.step(out, row), row)
        out.append(int(row.argmax()))
    assert out[0] == END
    assert [(e.controller, e.reason, e.at, e.tokens) for e in stack.events] == [("ts", "ts", 0, ())]


def test_an_exit_the_shift_held_back_stays_the_models():
    stack = ControlStack([TSController(TSParams(END, 0.5))], DELIMS, [START])
    row = torch.zeros(V)
    row[END] = 10.0  # the model stops despite the push down
    apply_action(stack.step([], row), row)
    stack.step([int(row.argmax())], torch.zeros(V))
    assert stack.tracker.closed_at == 0 and stack.events == []
