"""Request fields -> LYNX's rule (delta or score threshold), cap and exit floor
(server/plan.py), without an engine."""

import dataclasses
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from thinkctl.errors import InvalidRequest
from thinkctl.probes.artifact import EffortPoint, RiskPoint
from thinkctl.probes.model_folder import Conventions, ThinkTokens
from thinkctl.server.config import ServerConfig
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import plan
from thinkctl.server.probe_config import ProbeConfig
from thinkctl.server.protocol import ChatCompletionRequest

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
POINTS = (
    EffortPoint(effort=0.0, delta=None, max_thinking_tokens=0),
    EffortPoint(effort=0.25, delta=0.3, max_thinking_tokens=37),
    EffortPoint(effort=0.5, delta=0.01),
    EffortPoint(effort=0.75, delta=0.01, min_thinking_tokens=90),
    EffortPoint(effort=1.0, delta=None),
)
FLOOR_5 = {"min_thinking_tokens": 5}
# A probe calibrated by this version: effort points on score thresholds, and a risk table.
THRESHOLD_POINTS = (
    EffortPoint(effort=0.0, max_thinking_tokens=0),
    EffortPoint(effort=0.25, threshold=0.2, max_thinking_tokens=37),
    EffortPoint(effort=0.5, threshold=0.6, max_accuracy_loss=0.02),
    EffortPoint(effort=0.75, threshold=0.9, max_accuracy_loss=0.005),
    EffortPoint(effort=1.0),
)
RISK = (
    RiskPoint(epsilon=0.005, alpha=0.1, threshold=0.9),
    RiskPoint(epsilon=0.01, alpha=0.1, threshold=0.7),
    RiskPoint(epsilon=0.02, alpha=0.1, threshold=None),  # nothing certified: no exit
)


@pytest.fixture(scope="module")
def served():
    conv = Conventions(answer_inducer="")
    config = ServerConfig(
        model_name="testbed", probe=ProbeConfig("probe", 0.05, POINTS, {}), conventions=conv
    )
    think = ThinkTokens.of(conv, AutoTokenizer.from_pretrained(TESTBED))
    return config, ModelInfo("testbed", think, 512)


@pytest.fixture(scope="module")
def served_risk(served):
    config, info = served
    probe = ProbeConfig("probe", 0.05, THRESHOLD_POINTS, {}, RISK)
    return dataclasses.replace(config, probe=probe), info


def spec_of(served, **body):
    config, info = served
    req = ChatCompletionRequest(model="testbed", messages=[{"role": "user", "content": "x"}],
                                **body)  # fmt: skip
    return plan(req, info, config).spec


@pytest.mark.parametrize(
    ("body", "delta", "cap", "floor"),
    [
        ({"reasoning_effort": "low"}, 0.3, 37, 0),
        ({"reasoning_effort": "medium"}, 0.01, None, 0),
        ({"reasoning_effort": "high"}, 0.01, None, 90),
        ({"thinkctl": {"effort": 0.8}}, 0.01, None, 90),
        ({"reasoning_effort": "high", "thinkctl": {"lynx": FLOOR_5}}, 0.01, None, 5),
        ({"thinkctl": {"lynx": {"delta": 0.1, "min_thinking_tokens": 7}}}, 0.1, None, 7),
        ({"thinkctl": {"lynx": True}}, 0.05, None, 0),
    ],
)
def test_effort_and_fields_give_delta_cap_and_floor(served, body, delta, cap, floor):
    spec = spec_of(served, **body)
    assert spec.lynx.delta == delta and spec.lynx.min_thinking == floor
    assert (spec.budget.max if spec.budget else None) == cap


def test_full_effort_and_lynx_off_take_no_exit(served):
    assert spec_of(served, reasoning_effort="max") is None
    off = spec_of(served, reasoning_effort="high", thinkctl={"lynx": False})
    assert off is None or off.lynx is None


def test_a_negative_floor_is_refused(served):
    with pytest.raises(ValueError, match="min_thinking_tokens"):
        spec_of(served, thinkctl={"lynx": {"min_thinking_tokens": -1}})


def lynx_of(served, lynx=None, **body):
    if lynx is not None:
        body["thinkctl"] = {**body.get("thinkctl", {}), "lynx": lynx}
    return spec_of(served, **body).lynx


@pytest.mark.parametrize(
    ("lynx", "body", "threshold", "loss"),
    [
        ({"max_accuracy_loss": 0.01}, {}, 0.7, 0.01),
        ({"max_accuracy_loss": 0.015}, {}, 0.7, 0.01),  # rounded down to a calibrated level
        ({"max_accuracy_loss": 0.005}, {}, 0.9, 0.005),
        ({"max_accuracy_loss": 0.05}, {}, 1.0, 0.02),  # none certified: nothing exits
        (None, {"reasoning_effort": "medium"}, 0.6, 0.02),
        (None, {"reasoning_effort": "high"}, 0.9, 0.005),
        # Both: the safer threshold, and the request's own guarantee.
        ({"max_accuracy_loss": 0.01}, {"reasoning_effort": "medium"}, 0.7, 0.01),
        ({"max_accuracy_loss": 0.01}, {"reasoning_effort": "high"}, 0.9, 0.01),
    ],
)
def test_max_accuracy_loss_and_effort_give_a_certified_threshold(
    served_risk, lynx, body, threshold, loss
):
    spec = lynx_of(served_risk, lynx, **body)
    assert spec.delta is None and spec.threshold == threshold
    assert spec.max_accuracy_loss == loss
    assert dict(spec.rule())["threshold"] == threshold


def test_an_explicit_delta_wins_over_the_efforts_threshold(served_risk):
    spec = spec_of(served_risk, reasoning_effort="low", thinkctl={"lynx": {"delta": 0.1}})
    assert spec.lynx.delta == 0.1 and spec.lynx.threshold is None and spec.budget.max == 37


def test_low_effort_keeps_its_cap_beside_the_threshold(served_risk):
    spec = spec_of(served_risk, reasoning_effort="low")
    assert spec.lynx.threshold == 0.2 and spec.budget.max == 37


@pytest.mark.parametrize(
    ("lynx", "message"),
    [
        ({"max_accuracy_loss": 0.001}, "calibrated for max_accuracy_loss"),
        ({"max_accuracy_loss": 0.01, "delta": 0.05}, "not both"),
    ],
)
def test_a_risk_the_probe_cannot_honour_is_refused(served_risk, lynx, message):
    with pytest.raises(InvalidRequest, match=message) as err:
        lynx_of(served_risk, lynx)
    assert err.value.param == "thinkctl.lynx.max_accuracy_loss"


def test_an_old_probe_without_a_risk_table_refuses_max_accuracy_loss(served):
    with pytest.raises(InvalidRequest, match="no answer-level risk table"):
        lynx_of(served, {"max_accuracy_loss": 0.01})
