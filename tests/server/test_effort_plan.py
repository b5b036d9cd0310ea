"""Request fields -> per-query or global effort (server/plan.py), without an engine, on the
testbed's calibration (an effort table with per-query points and a length predictor)."""

import dataclasses
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.server.test_lynx_plan import POINTS
from thinkctl.errors import InvalidRequest
from thinkctl.probes.model_folder import Conventions, ThinkTokens
from thinkctl.server.config import ServerConfig
from thinkctl.server.effort import EffortMap
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import plan
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
    with pytest.raises(InvalidRequest) as err:
        budget_of(config, info, thinkctl={"effort": 0.5, "effort_policy": "query"})
    assert err.value.param == "thinkctl.effort_policy"
