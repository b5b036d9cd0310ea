"""Request fields -> per-query or global effort (server/plan.py), without an engine, on the
testbed's calibration (an effort table with per-query points and a length predictor)."""

import dataclasses
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.server.test_lynx_plan import POINTS
from thinkctl.errors import InvalidRequest
from thinkctl.probes.effort_table import CombinedPoint
from thinkctl.probes.model_folder import Conventions, ThinkTokens
from thinkctl.server.config import ServerConfig
from thinkctl.server.effort import EffortMap
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import effort_card, effort_policy, plan
from thinkctl.server.probe_config import ProbeConfig
from thinkctl.server.protocol import ChatCompletionRequest

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"


@pytest.fixture(scope="module")
def served():
    conv = Conventions(answer_inducer="")
    config = ServerConfig(model_name="testbed", effort=EffortMap.load(TESTBED), conventions=conv)
    think = ThinkTokens.of(conv, AutoTokenizer.from_pretrained(TESTBED))
    return config, ModelInfo("testbed", think, 512)


def budget_of(config, info, **body):
    req = ChatCompletionRequest(model="testbed", messages=[{"role": "user", "content": "x"}],
                                **body)  # fmt: skip
    spec = plan(req, info, config).spec
    return spec.budget if spec is not None else None


def test_effort_gives_its_per_query_point_up_to_its_largest_budget(served):
    config, info = served
    point = config.effort.query_budget(0.3)
    b = budget_of(config, info, thinkctl={"effort": 0.3})
    assert b.query.budgets == list(point.budgets) and b.query.edges == list(point.edges)
    assert b.max == max(point.budgets) and b.reason == "budget"
    assert budget_of(config, info, reasoning_effort="medium").query.effort == 0.5


@pytest.mark.parametrize("body", [
    {"thinkctl": {"effort": 0.3, "effort_policy": "global"}},
    {"thinkctl": {"effort": 0.3, "max_thinking_tokens": 20}},
    {"reasoning_effort": "max"},
])  # fmt: skip
def test_the_global_cap_or_an_explicit_budget_leave_no_per_query_point(served, body):
    config, info = served
    b = budget_of(config, info, **body)
    assert b is None or b.query is None
    if body.get("thinkctl", {}).get("effort_policy") == "global":
        assert b.max == config.effort.budget(0.3)


def test_the_answer_reserve_caps_every_bin(served):
    config, info = served
    b = budget_of(config, info, max_tokens=40, thinkctl={"effort": 0.9})
    assert b.reason == "answer_reserve" and max(b.query.budgets) == b.max < 40


@pytest.mark.parametrize("where", ["uncalibrated", "lynx"])
def test_per_query_effort_asked_for_where_it_cannot_be_given_is_a_400(served, where):
    config, info = served
    if where == "uncalibrated":
        config = dataclasses.replace(config, effort=EffortMap())
    else:
        config = dataclasses.replace(config, probe=ProbeConfig("probe", 0.05, POINTS, {}))
    # With a probe, per-query effort is there unless LYNX is asked for too.
    lynx = {"lynx": True} if where == "lynx" else {}
    with pytest.raises(InvalidRequest) as err:
        budget_of(config, info, thinkctl={"effort": 0.5, "effort_policy": "query", **lynx})
    assert err.value.param == "thinkctl.effort_policy"


SHA = "ab" * 32
COMBINED = (CombinedPoint(0.25, 0.9, 0.01, 0.3, None), CombinedPoint(0.5, 0.8, 0.02, 0.5, None),
            CombinedPoint(0.75, None, None, None, 60))  # fmt: skip


def _combined(config, sha=SHA):
    effort = dataclasses.replace(config.effort, combined=COMBINED, combined_probe=SHA)
    probe = ProbeConfig("probe", 0.05, POINTS, {}, sha256=sha)
    return dataclasses.replace(config, effort=effort, probe=probe)


def spec_of(config, info, **body):
    req = ChatCompletionRequest(model="testbed", messages=[{"role": "user", "content": "x"}],
                                **body)  # fmt: skip
    return plan(req, info, config).spec


def test_combined_effort_exits_by_the_probe_and_caps_by_the_per_query_budget(served):
    config, info = served
    config = _combined(config)
    assert effort_policy(config) == "combined"
    spec = spec_of(config, info, reasoning_effort="medium")
    point = config.effort.query_budget(0.5)
    assert spec.lynx.threshold == 0.8 and spec.lynx.max_accuracy_loss == 0.02
    assert spec.budget.query.budgets == list(point.budgets)
    assert spec.budget.max == max(point.budgets)
    # /v1/models says the cap the level really gets, beside the budget table's.
    level = effort_card(config)["levels"]["medium"]
    assert level["max_thinking_tokens"] == spec.budget.max
    assert level["global_cap"] == config.effort.budget(0.5) != level["max_thinking_tokens"]
    spec = spec_of(config, info, thinkctl={"effort": 0.7})  # nearest: 0.75, a cap alone
    assert spec.lynx is None and spec.budget.query is None and spec.budget.max == 60
    levels = effort_card(config)["levels"]
    assert levels["low"]["combined"] == COMBINED[0].as_json()
    assert levels["medium"]["combined"]["query_effort"] == 0.5


@pytest.mark.parametrize("body,lynx,query", [
    ({"thinkctl": {"effort": 0.5, "lynx": False}}, False, True),
    ({"thinkctl": {"effort": 0.5, "effort_policy": "query"}}, False, True),
    ({"thinkctl": {"effort": 0.5, "effort_policy": "global"}}, False, False),
    ({"thinkctl": {"effort": 0.5, "lynx": True}}, True, False),  # the probe's own point
])  # fmt: skip
def test_lynx_and_effort_policy_still_override_the_combined_effort(served, body, lynx, query):
    config, info = served
    spec = spec_of(_combined(config), info, **body)
    assert (spec.lynx is not None) == lynx
    assert (spec.budget is not None and spec.budget.query is not None) == query
    if lynx:  # the probe's own point at 0.5: delta 0.01
        assert spec.lynx.delta == 0.01 and spec.lynx.threshold is None


def test_combined_points_fitted_with_another_probe_are_not_used(served):
    config, info = served
    config = _combined(config, sha="cd" * 32)
    assert effort_policy(config) == "lynx"
    spec = spec_of(config, info, reasoning_effort="medium")
    assert spec.budget is None or spec.budget.query is None  # the probe's effort points
    assert "lynx" in effort_card(config)["levels"]["medium"]
