"""A smoke-sized accuracy benchmark against the shared test server."""

import json
import subprocess
import sys

from bench.accuracy import parse_setting
from tests.conftest import API_KEY


def test_settings_parse_into_request_fields():
    assert parse_setting("none") == {}
    assert parse_setting("budget:60+ts:100") == {
        "thinkctl": {"max_thinking_tokens": 60, "ts": {"strength": 100.0}}
    }
    assert parse_setting("effort:medium") == {
        "reasoning_effort": "medium",
        "thinkctl": {"lynx": False},
    }
    assert parse_setting("effort:0.3+top_h:0.4") == {
        "thinkctl": {"effort": 0.3, "lynx": False, "top_h": {"alpha": 0.4}}
    }
    assert parse_setting("lynx:0.05") == {"thinkctl": {"lynx": {"delta": 0.05}}}
    assert parse_setting("lynx_effort:high") == {
        "reasoning_effort": "high",
        "thinkctl": {"lynx": True},
    }


def test_smoke_run_writes_results_summary_and_plot_and_resumes(server, tmp_path):
    cmd = [sys.executable, "-m", "bench.accuracy", "--base-url", server.base_url,
           "--api-key", API_KEY, "--n", "6", "--settings", "none", "budget:20", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(rows) == 12
    summary = {r["setting"]: r for r in json.loads((tmp_path / "accuracy.json").read_text())}
    assert set(summary) == {"none", "budget:20", "oracle"}
    for r in summary.values():
        assert {"setting", "accuracy", "mean_thinking_tokens", "n"} <= set(r) and r["n"] == 6
    assert summary["budget:20"]["mean_thinking_tokens"] <= 20
    assert summary["oracle"]["mean_thinking_tokens"] <= summary["none"]["mean_thinking_tokens"]
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun finds every row done and sends nothing new.
    subprocess.run([*cmd, "--no-oracle"], check=True, capture_output=True, timeout=600)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 12
