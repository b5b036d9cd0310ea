"""`thinkctl bench engine`, smoke-sized: plain vLLM and thinkctl's engine in one process."""

import json
import subprocess
import sys

import pytest

from thinkctl.bench.engine_ab import summarise


def test_smoke_run_scores_cues_without_exits_and_writes_ratios(tmp_path):
    cmd = [sys.executable, "-m", "thinkctl", "bench", "engine", "--arms", "lynx",
           "--prompts", "16", "--rounds", "2", "--out", str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "engine_ab.json").read_text())
    assert set(result["tok_s"]) == {"plain", "lynx"}
    assert all(t > 0 for ts in result["tok_s"].values() for t in ts)
    # The probe ran at cues (the arm measured what it claims to) and never exited.
    assert result["events"]["lynx"]["cues_scored"] > 0
    assert result["events"]["lynx"]["lynx_exits"] == 0
    lo, hi = result["ratio"]["lynx"]["ci95"]
    assert lo <= result["ratio"]["lynx"]["mean"] <= hi
    assert (tmp_path / "engine_ab.md").is_file()


def test_ratios_pair_each_arm_with_plain_in_the_same_round():
    def arm(tok_s):
        return {"tok_s": tok_s, "cues_scored": 3, "lynx_exits": 0}

    rounds = [
        {"plain": arm(100.0), "lynx": arm(90.0)},
        {"plain": arm(300.0), "lynx": arm(300.0)},
        {"plain": arm(200.0), "lynx": arm(190.0)},
    ]
    out = summarise(rounds)
    lynx = out["ratio"]["lynx"]
    assert lynx["rounds"] == [0.9, 1.0, 0.95]  # not 580 / 600 from the means
    assert lynx["mean"] == pytest.approx(0.95) and lynx["median"] == 0.95
    lo, hi = lynx["ci95"]
    assert lo < 0.95 < hi and hi - lo == pytest.approx(2 * 4.303 * 0.05 / 3**0.5, abs=2e-3)
    assert out["tok_s"]["plain"] == [100, 300, 200]
    assert out["events"]["lynx"] == {"cues_scored": 9, "lynx_exits": 0}
