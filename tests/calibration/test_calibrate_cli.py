"""`thinkctl calibrate`, smoke-sized, end to end on the testbed (real vLLM engine): from a
model folder with no calibration to a server that uses what it wrote, with no flag."""

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from thinkctl.probes.artifact import ProbeArtifact
from thinkctl.probes.features import model_facts
from thinkctl.testbed import tasks

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
KEYS = {"delta", "n_cal_class0", "premature_exit_rate_event", "premature_exit_rate_trajectory",
        "resplits_within_delta", "premature_exit_rate_event_resplit_mean",
        "premature_exit_rate_question_resplit_mean", "accuracy", "mean_thinking_tokens",
        "auc"}  # fmt: skip
RISK_KEYS = {"epsilon", "alpha", "threshold", "savings", "accuracy", "resplit_loss_mean",
             "resplit_share_over_epsilon"}  # fmt: skip


def calibrate(model: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "thinkctl", "calibrate", "--model", str(model),
           "--data", "testbed", "--limit", "120", "--samples", "2",
           "--shard-size", "120", "--max-tokens", "450", "--answer-tokens", "8",
           "--exit-every", "16"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The testbed's model without its calibration, calibrated from scratch into itself."""
    model = tmp_path_factory.mktemp("model")
    for item in TESTBED.iterdir():
        if item.is_file() and item.name != "effort.json":
            (model / item.name).symlink_to(item)
    r = calibrate(model)
    assert r.returncode == 0, r.stderr[-3000:]
    return model


@pytest.fixture(scope="module")
def out(model) -> Path:
    return model / "probe"  # the default: the calibration folder's probe/


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


def test_the_effort_table_and_length_predictor_are_written_beside_the_model(model, out):
    table = json.loads((model / "effort.json").read_text())
    points = table["per_query"]["points"]
    assert [p["effort"] for p in points] == [e for e, _ in table["points"] if 0 < e < 1]
    assert table["model"]["tokenizer_sha256"] == json.loads(
        (model / "length" / "predictor.json").read_text())["tokenizer_sha256"]  # fmt: skip
    length = json.loads((out / "report.json").read_text())["length"]
    assert set(length["spearman_test"]) == {"natural", "sufficient"}
    assert -1 <= length["spearman_test"]["natural"] <= 1
    assert [r["effort"] for r in length["effort_test"]] == [0.1, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9]
    assert "Length predictors" in (out / "report.md").read_text()
    # Effort as one policy, fitted with the probe of the same run (calibration/combined.py).
    sha = json.loads((out / "probe.json").read_text())["tensors_sha256"]
    combined = table["combined"]
    assert combined["probe_sha256"] == sha
    assert [p["effort"] for p in combined["points"]] == [p["effort"] for p in points]
    rows = length["combined_test"]
    assert [r["effort"] for r in rows] == [p["effort"] for p in points]
    tokens = [r["combined_thinking_tokens"] for r in rows]
    assert all(0 <= t <= 450 for t in tokens)
    assert "Effort as one policy" in (out / "report.md").read_text()


def test_serve_uses_the_calibration_with_no_flag(model, out, tmp_path):
    """The folder calibrate has just written is served as one bundle, with no flag: the
    probe, the effort table and the length predictor, effort meaning their combination."""
    from thinkctl.bench.server_process import start_server, stop_server
    from thinkctl.server.effort import EffortMap

    proc, url = start_server(str(model), tmp_path / "serve.log")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
        card = client.models.list().data[0].model_extra["thinkctl"]
        assert card["effort"]["calibration"] == str(model)
        assert card["lynx"]["path"] == str(out.resolve())
        assert card["lynx"]["source"] == "the calibration folder"
        assert card["effort"]["policy"] == "combined"
        # The answer reserve is the calibration's: a percentile of the traces' answers.
        reserve = json.loads((model / "effort.json").read_text())["answer_reserve"]
        assert reserve["n"] > 0 and reserve["tokens"] > 0
        assert card["answer_reserve"] == {"tokens": reserve["tokens"], "source": "calibration"}
        prompt = tasks.held_out("test")[0].prompt()

        def trace(**ctl) -> dict:
            r = client.chat.completions.create(
                model=str(model), messages=[{"role": "user", "content": prompt}],
                max_tokens=450, extra_body={"thinkctl": {"effort": 0.7, **ctl}},
            )  # fmt: skip
            return r.choices[0].model_extra["thinkctl"]

        # Per-query budgets stay available by name.
        got = trace(effort_policy="query")
        (event,) = [e for e in got["events"] if e["reason"] == "query_budget"]
        assert event["effort"] == 0.7 and event["predicted_natural_tokens"] > 0
        assert got["thinking_tokens"] <= event["max_thinking_tokens"]
        # Effort alone is the combined point the table holds for it.
        point = EffortMap.load(model).combined_point(0.7)
        got = trace()
        budgets = [e for e in got["events"] if e["reason"] == "query_budget"]
        assert len(budgets) == (point.query_effort is not None)
        if point.cap is not None:
            assert got["thinking_tokens"] <= point.cap
        if got["exit_reason"] == "lynx":
            assert point.threshold is not None
    finally:
        stop_server(proc)


def test_rerun_reuses_finished_shards(model, out):
    r = calibrate(model)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "report.json").read_text())["reused_shards"] == 2


def test_calibration_from_prompts_alone_says_so(tmp_path):
    """`--prompts`: no answers; exits labelled by agreement with the trace's own answer."""
    prompts = tmp_path / "prompts.jsonl"
    problems = tasks.held_out("calibration")[:120]
    prompts.write_text("".join(json.dumps({"question": p.prompt()}) + "\n" for p in problems))
    cmd = [sys.executable, "-m", "thinkctl", "calibrate", "--model", str(TESTBED),
           "--prompts", str(prompts), "--samples", "2", "--shard-size", "120",
           "--max-tokens", "450", "--answer-tokens", "8", "--exit-every", "16",
           "--calibration", str(tmp_path / "cal")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = (tmp_path / "cal" / "probe" / "report.md").read_text()
    assert "label-free" in report and "answer-change rate" in report
    meta = json.loads((tmp_path / "cal" / "probe" / "probe.json").read_text())
    assert meta["training"]["labels"] == "self-agreement"
    events = json.loads((tmp_path / "cal" / "probe" / "report.json").read_text())["n_events"]
    assert events > 0  # the premise: exits were labelled
