"""`thinkctl bench serve`, smoke-sized: vLLM's client against plain vLLM and thinkctl."""

import json
import subprocess
import sys

from thinkctl.bench.serve import summarise


def test_smoke_run_writes_serve_json(tmp_path):
    cmd = [sys.executable, "-m", "thinkctl", "bench", "serve", "--scenarios", "no_control",
           "--prompts", "12", "--rounds", "1", "--sample", "6", "--out", str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "serve.json").read_text())
    assert set(result["means"]) == {"vllm", "no_control"}
    for m in result["means"].values():
        assert m["completed"] + m["failed"] == 12 and m["completed"] >= 11
        assert m["output_throughput"] > 0
        assert 0 < m["http_cpu_ms_per_token"] < 100  # counted while the client ran
    assert result["throughput_ratio"]["no_control"] > 0
    sample = result["reasoning"]["no_control"]
    assert sample["mean_thinking_tokens"] > 0 and sample["ttfat_median_ms"] > 0
    assert (tmp_path / "serve.md").is_file()


def test_ratios_are_relative_to_plain_vllm():
    run = {"output_throughput": 100.0, "request_throughput": 1.0, "completed": 5}
    runs = {
        "vllm": [run, {**run, "output_throughput": 300.0}],
        "lynx": [{**run, "output_throughput": 190.0}],
        "no_control": [{**run, "request_throughput": 2.0}],
        "effort_medium": [{**run, "request_throughput": 5.0}],
    }
    out = summarise(runs)
    assert out["throughput_ratio"]["lynx"] == 0.95  # 190 / mean(100, 300)
    assert out["throughput_ratio_rounds"]["lynx"] == [1.9]  # against vLLM's same round
    assert out["output_throughput_rounds"]["vllm"] == [100, 300]
    assert out["goodput_ratio"]["effort_medium"] == 2.5
