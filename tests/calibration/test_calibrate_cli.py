"""`thinkctl calibrate`, smoke-sized, end to end on the testbed (real vLLM engine)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probes.artifact import ProbeArtifact
from probes.features import model_facts

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
KEYS = {"delta", "n_cal_class0", "premature_exit_rate_event", "premature_exit_rate_trajectory",
        "resplits_within_delta", "premature_exit_rate_event_resplit_mean",
        "premature_exit_rate_question_resplit_mean", "accuracy", "mean_thinking_tokens",
        "auc"}  # fmt: skip
RISK_KEYS = {"epsilon", "alpha", "threshold", "savings", "accuracy", "resplit_loss_mean",
             "resplit_share_over_epsilon"}  # fmt: skip


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    cmd = [sys.executable, "-m", "thinkctl", "calibrate", "--model", str(TESTBED), "--out",
           str(out), "--data", "testbed", "--limit", "120", "--samples", "2",
           "--shard-size", "120", "--max-tokens", "450", "--answer-tokens", "8"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_writes_artifact_report_and_plots(out):
    for name in ["probe.json", "probe.safetensors", "report.json", "report.md",
                 "calibration_curve.png", "premature_exit_vs_delta.png",
                 "accuracy_vs_tokens.png"]:  # fmt: skip
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert [r["delta"] for r in report["deltas"]] == [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]
    for row in report["deltas"]:
        assert KEYS <= set(row)
        assert 0 <= row["premature_exit_rate_event"] <= 1
    assert 0 <= report["probe"]["auc"] <= 1
    assert [r["epsilon"] for r in report["risk"]] == [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1]
    for row in report["risk"]:
        assert RISK_KEYS <= set(row) and row["alpha"] == 0.1
        assert 0 <= row["resplit_loss_mean"] <= 1
    # --confidence auto: both inputs tried, each candidate also scored on held-out events
    names = {"mlp", "logreg", "mlp+confidence", "logreg+confidence"}
    assert set(report["probe"]["auc_val"]) == set(report["probe"]["auc_test"]) == names
    meta = json.loads((out / "probe.json").read_text())
    assert meta["features"]["confidence"] == report["probe"]["confidence"]
    assert report["probe"]["dim"] == 4 * 128 + report["probe"]["confidence"]
    assert report["n_traces"] == 240
    assert len(list((out / "work").glob("shard-*.safetensors"))) == 2


def test_the_artifact_fits_the_testbed_and_has_an_effort_map(out):
    from transformers import AutoConfig, AutoTokenizer

    art = ProbeArtifact.load(out)
    art.check_model(model_facts(AutoConfig.from_pretrained(TESTBED),
                                AutoTokenizer.from_pretrained(TESTBED)))  # fmt: skip
    efforts = [p.effort for p in art.meta.effort]
    assert efforts[0] == 0 and efforts[-1] == 1 and efforts == sorted(efforts)
    # Monotone by construction: a lower effort never has a higher threshold.
    ts = [1.0 if p.threshold is None else p.threshold for p in art.meta.effort[1:]]
    assert ts == sorted(ts)
    assert [p.epsilon for p in art.meta.risk] == sorted(p.epsilon for p in art.meta.risk)


def test_rerun_reuses_finished_shards(out):
    cmd = [sys.executable, "-m", "thinkctl", "calibrate", "--model", str(TESTBED), "--out",
           str(out), "--data", "testbed", "--limit", "120", "--samples", "2",
           "--shard-size", "120", "--max-tokens", "450", "--answer-tokens", "8"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "report.json").read_text())["reused_shards"] == 2
