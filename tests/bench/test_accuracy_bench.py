"""A smoke-sized accuracy benchmark against the shared test server."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from thinkctl.bench.accuracy import parse_setting

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"


def test_settings_parse_into_request_fields():
    assert parse_setting("none") == {}
    assert parse_setting("budget:60+ts:100") == {
        "thinkctl": {"max_thinking_tokens": 60, "ts": {"strength": 100.0}}
    }
    assert parse_setting("effort:medium") == {
        "reasoning_effort": "medium",
        "thinkctl": {"lynx": False, "effort_policy": "global"},
    }
    assert parse_setting("effort:0.3+top_h:0.4") == {
        "thinkctl": {"effort": 0.3, "lynx": False, "effort_policy": "global",
                     "top_h": {"alpha": 0.4}}
    }  # fmt: skip
    assert parse_setting("effort_query:0.3") == {
        "thinkctl": {"effort": 0.3, "lynx": False, "effort_policy": "query"}
    }
    assert parse_setting("lynx:0.05") == {"thinkctl": {"lynx": {"delta": 0.05}}}
    assert parse_setting("lynx_effort:high") == {
        "reasoning_effort": "high",
        "thinkctl": {"lynx": True},
    }
    assert parse_setting("deer:0.99") == {"thinkctl": {"deer": {"threshold": 0.99}}}
    assert parse_setting("dynasor:16x3") == {"thinkctl": {"dynasor": {"every": 16, "agree": 3}}}


def test_smoke_run_writes_results_summary_and_plot_and_resumes(server, tmp_path):
    cmd = [sys.executable, "-m", "thinkctl.bench.accuracy", "--base-url", server.base_url,
           "--api-key", API_KEY, "--n", "6", "--settings", "none", "budget:20", "dynasor:8x2",
           "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(rows) == 18
    summary = {r["setting"]: r for r in json.loads((tmp_path / "accuracy.json").read_text())}
    assert set(summary) == {"none", "budget:20", "dynasor:8x2", "oracle"}
    dyn = summary["dynasor:8x2"]
    assert dyn["probe_tokens"] > 0 and summary["none"]["probe_tokens"] == 0
    assert dyn["total_tokens"] == pytest.approx(dyn["mean_thinking_tokens"] + dyn["probe_tokens"],
                                                abs=0.11)  # fmt: skip
    assert (tmp_path / "pareto_total.png").read_bytes()[:4] == b"\x89PNG"
    for r in summary.values():
        assert {"setting", "accuracy", "mean_thinking_tokens", "n"} <= set(r) and r["n"] == 6
    assert summary["budget:20"]["mean_thinking_tokens"] <= 20
    assert summary["oracle"]["mean_thinking_tokens"] <= summary["none"]["mean_thinking_tokens"]
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun finds every row done and sends nothing new.
    subprocess.run([*cmd, "--no-oracle"], check=True, capture_output=True, timeout=600)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 18


def test_a_jsonl_dataset_is_checked_by_math_equivalence(server, tmp_path):
    data = tmp_path / "tiny.jsonl"
    rows = [
        {"question": "compute 3 ; A + 4 ; B * 2 ; C - 5", "answer": "9"},
        {"question": "compute 5 ; A * 3", "answer": "\\frac{10}{2}"},
    ]  # 15 mod 10 = 5
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "thinkctl", "bench", "accuracy", "--base-url", server.base_url,
           "--api-key", API_KEY, "--data", str(data), "--settings", "none", "--no-oracle",
           "--out", str(tmp_path / "out")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    results = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 and all(r["correct"] for r in results)  # the testbed gets these right


def test_math_equal_reads_the_last_boxed_answer():
    from thinkctl.calibration.datasets import math_equal

    assert math_equal("so \\boxed{3} no, \\boxed{\\frac{1}{2}}", "0.5")
    assert math_equal("\\boxed{ 4 }", "5") is False
    assert math_equal("no box", "5") is None


def test_a_model_folder_and_a_jsonl_run_with_long_max_tokens(tmp_path):
    """The bench starts its own server on a model folder (the testbed's weights, its context
    stretched so that 8192 new tokens fit: rotary positions need no new weights) and sends
    max_tokens 8192 from the flag; the plot's title comes from the flag."""
    model = tmp_path / "long-testbed"
    model.mkdir()
    for f in TESTBED.iterdir():
        if f.is_file() and f.name not in ("effort.json", "metrics.json"):
            shutil.copy(f, model / f.name)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8448}))
    data = tmp_path / "tiny.jsonl"
    data.write_text(json.dumps({"question": "compute 3 ; A + 4", "answer": "7"}) + "\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "thinkctl", "bench", "accuracy", "--model", str(model),
           "--data", str(data), "--max-tokens", "8192", "--settings", "none", "budget:20",
           "--no-oracle", "--title", "long context", "--out", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["setting"] for r in rows) == ["budget:20", "none"]
    assert next(r for r in rows if r["setting"] == "budget:20")["thinking_tokens"] <= 20
    run = json.loads((out / "accuracy_run.json").read_text())
    assert run["max_tokens"] == 8192 and run["title"] == "long context"
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_data_is_required_for_a_model_that_is_not_a_testbed(tmp_path):
    cmd = [sys.executable, "-m", "thinkctl.bench.accuracy", "--model", str(tmp_path), "--out",
           str(tmp_path / "out")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--data is required" in r.stderr
