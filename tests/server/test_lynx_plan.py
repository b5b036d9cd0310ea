"""Request fields -> LYNX's delta, cap and exit floor (server/plan.py), without an engine."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from probes.artifact import EffortPoint
from probes.model_folder import Conventions, ThinkTokens
from server.config import ServerConfig
from server.model_info import ModelInfo
from server.plan import plan
from server.probe_config import ProbeConfig
from server.protocol import ChatCompletionRequest

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
POINTS = (
    EffortPoint(effort=0.0, delta=None, max_thinking_tokens=0),
    EffortPoint(effort=0.25, delta=0.3, max_thinking_tokens=37),
    EffortPoint(effort=0.5, delta=0.01),
    EffortPoint(effort=0.75, delta=0.01, min_thinking_tokens=90),
    EffortPoint(effort=1.0, delta=None),
)
FLOOR_5 = {"min_thinking_tokens": 5}


@pytest.fixture(scope="module")
def served():
    conv = Conventions(answer_inducer="")
    config = ServerConfig(
        model_name="testbed", probe=ProbeConfig("probe", 0.05, POINTS, {}), conventions=conv
    )
    think = ThinkTokens.of(conv, AutoTokenizer.from_pretrained(TESTBED))
    return config, ModelInfo("testbed", think, 512)


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
