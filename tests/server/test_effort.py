"""reasoning_effort and numeric effort on the calibrated testbed."""

import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODEL
from thinkctl.testbed import tasks

PROBLEMS = tasks.held_out("test")[:28]
TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"


async def mean_thinking(aclient, **body) -> float:
    async def one(i: int, p: tasks.Problem) -> int:
        r = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": p.prompt()}], max_tokens=450,
            temperature=0.6, seed=i, **body,
        )  # fmt: skip
        assert tasks.extract_answer(r.choices[0].message.content) is not None
        return r.choices[0].model_extra["thinkctl"]["thinking_tokens"]

    return statistics.mean(await asyncio.gather(*(one(i, p) for i, p in enumerate(PROBLEMS))))


async def test_reasoning_effort_orders_thinking_length(aclient):
    levels = ["none", "minimal", "low", "medium", "high", "max"]
    means = [await mean_thinking(aclient, reasoning_effort=level) for level in levels]
    assert means == sorted(means) and len(set(means)) == len(means), means


async def test_numeric_effort_is_a_fraction_of_natural_thinking(aclient, client):
    natural = await mean_thinking(aclient)
    half = await mean_thinking(aclient, extra_body={"thinkctl": {"effort": 0.5}})
    assert 0.35 < half / natural < 0.65
    card = client.models.list().data[0].model_extra["thinkctl"]["effort"]
    assert card["calibrated"] and card["levels"]["medium"]["effort"] == 0.5
    assert card["calibration"].endswith("testbed/model")  # the model folder's own table


@pytest.mark.parametrize("damage", ["other_tokenizer", "no_table"])
def test_an_effort_table_for_another_tokenizer_is_refused_at_start(tmp_path, damage):
    cal = tmp_path / "calibration"
    cal.mkdir()
    if damage == "other_tokenizer":
        table = json.loads((TESTBED / "effort.json").read_text())
        table["model"]["tokenizer_sha256"] = "0" * 64
        (cal / "effort.json").write_text(json.dumps(table))
    r = subprocess.run([sys.executable, "-m", "thinkctl", "serve", "--model", MODEL,
                        "--calibration", str(cal)], capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode != 0
    want = "made for another tokenizer" if damage == "other_tokenizer" else "holds no effort.json"
    assert want in r.stderr, r.stderr[-2000:]


def _trace(client, **ctl) -> dict:
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROBLEMS[0].prompt()}],
        max_tokens=450, temperature=0.6, seed=0, extra_body={"thinkctl": ctl},
    )  # fmt: skip
    return r.choices[0].model_extra["thinkctl"]


def test_effort_is_per_query_where_a_length_predictor_is_calibrated(client):
    card = client.models.list().data[0].model_extra["thinkctl"]["effort"]
    assert card["policy"] == "per_query"
    table = json.loads((TESTBED / "effort.json").read_text())
    assert card["made_by"] == table["calibration"]["command"]  # how it was made
    medium = next(p for p in table["per_query"]["points"] if p["effort"] == 0.5)
    assert card["levels"]["medium"]["per_query"] == medium
    (event,) = [e for e in _trace(client, effort=0.7)["events"] if e["reason"] == "query_budget"]
    assert event["controller"] == "budget" and event["effort"] == 0.7
    assert event["predicted_natural_tokens"] > event["predicted_sufficient_tokens"] > 0
    q = next(p for p in table["per_query"]["points"] if p["effort"] == 0.7)
    k = sum(event["predicted_natural_tokens"] >= e for e in q["edges"])  # its bin
    assert event["max_thinking_tokens"] == q["budgets"][k]


def test_the_global_cap_stays_available_by_name(client):
    trace = _trace(client, effort=0.3, effort_policy="global")
    assert not [e for e in trace["events"] if e["reason"] == "query_budget"]
    cap = dict(map(tuple, json.loads((TESTBED / "effort.json").read_text())["points"]))[0.3]
    assert trace["thinking_tokens"] <= cap


def test_an_unknown_effort_policy_is_a_400(client):
    import openai

    with pytest.raises(openai.BadRequestError) as err:
        _trace(client, effort=0.3, effort_policy="sometimes")
    assert err.value.body["param"].endswith("effort_policy")
