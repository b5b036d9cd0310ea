"""reasoning_effort and numeric effort on the calibrated testbed."""

import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import tasks
from tests.conftest import MODEL

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
