"""The LYNX controller with hand-made features and a stub scorer."""

from dataclasses import replace

import pytest
import torch

from thinkctl.control.lynx import LynxController, LynxParams
from thinkctl.control.stack import ControlStack

from .helpers import DELIMS, END, INDUCE, START, WAIT, logits

CUE = WAIT  # any id works as a cue
DELTA = (("delta", 0.1),)
PARAMS = LynxParams(cue_ids=frozenset({CUE}), close=(END, INDUCE), rule=DELTA, q0=0.6, q1=0.5)


def scorer(features: torch.Tensor) -> float:
    return float(features[0])  # the "probe" reads the first feature


def run(outputs, feats_at, score, params=PARAMS):
    """Step a stack over `outputs`, offering features only at positions in `feats_at`."""
    stack = ControlStack([LynxController(params, scorer)], DELIMS, prompt_ids=[START])
    actions = []
    for n in range(len(outputs) + 1):
        hidden = (lambda: torch.tensor([score])) if n in feats_at else None
        actions.append(stack.step(outputs[:n], logits(), hidden))
    return stack, actions


def test_exits_at_a_confident_cue():
    stack, actions = run([7, CUE], feats_at={2}, score=0.9)
    assert actions[2].force == (END,)
    (event,) = stack.events
    assert (event.controller, event.reason, event.at, event.tokens) == (
        "lynx",
        "lynx",
        2,
        (END, INDUCE),
    )
    assert dict(event.detail)["cue_index"] == 0 and dict(event.detail)["score"] == 0.9


def test_an_ambiguous_cue_is_reported_and_thinking_goes_on():
    stack, actions = run([7, CUE], feats_at={2}, score=0.55)  # set {0, 1}
    assert actions[2].is_empty
    (event,) = stack.events
    assert event.note and event.reason == "probe" and event.tokens == ()


@pytest.mark.parametrize("feats_at", [set(), {1}])
def test_no_features_or_not_a_cue_means_no_decision(feats_at):
    stack, actions = run([7, CUE], feats_at=feats_at, score=0.99)
    assert all(a.is_empty for a in actions) and not stack.events


def test_cues_after_thinking_are_ignored():
    stack, _ = run([END, CUE], feats_at={2}, score=0.99)
    assert not stack.events


def test_a_floor_holds_exits_until_thinking_holds_that_many_tokens():
    # Thinking holds 2 tokens at the first cue (held back, not scored), 4 at the second.
    floored = replace(PARAMS, min_thinking=3)
    stack, actions = run([7, CUE, 7, CUE], feats_at={2, 4}, score=0.9, params=floored)
    assert actions[2].is_empty and actions[4].force == (END,)
    (event,) = stack.events
    assert event.at == 4 and dict(event.detail)["cue_index"] == 1
    assert dict(event.detail)["min_thinking"] == 3  # the trace says why earlier cues were not
    # The floor counts the cue itself: at exactly 2 tokens the first cue exits.
    stack, actions = run([7, CUE], feats_at={2}, score=0.9, params=replace(PARAMS, min_thinking=2))
    assert actions[2].force == (END,)


def test_params_check_rule_and_close():
    with pytest.raises(ValueError):
        LynxParams(frozenset({CUE}), (), DELTA, 0.5, 0.5)
    with pytest.raises(ValueError):
        LynxParams(frozenset({CUE}), (END,), (), 0.5, 0.5)
    with pytest.raises(ValueError):
        LynxParams(frozenset({CUE}), (END,), DELTA, 0.5, 0.5, min_thinking=-1)
