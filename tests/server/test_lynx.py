"""LYNX through the real server: a testbed server started with the shipped probe."""

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.conftest import MODEL, Server, running_server
from thinkctl.probes.artifact import TENSOR_FILE, ProbeArtifact, point_for_effort

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "testbed" / "model" / "probe"
N = 24  # problems per comparison


@pytest.fixture(scope="module")
def lynx_server(tmp_path_factory) -> Iterator[Server]:
    # vLLM's default mode, compiled: the probe's hooks must run inside the compiled graph.
    # No --probe: serve finds the testbed's in its calibration folder (the model folder).
    # INFO, so that its start-up lines are in the log (the test servers' default: warnings).
    info = ["--uvicorn-log-level", "info"]
    with running_server(tmp_path_factory, "lynx", info, {}, eager=False, probe=True) as s:
        yield s


@pytest.fixture(scope="module")
def lclient(lynx_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{lynx_server.base_url}/v1", api_key="x", max_retries=0,
                         timeout=120)  # fmt: skip


def problems(n: int = N):
    from thinkctl.testbed import tasks

    return tasks.held_out("test")[:n]


def ask(client, prompt: str, thinkctl: dict | None = None, **kw):
    extra = {"thinkctl": thinkctl} if thinkctl is not None else {}
    kw.setdefault("temperature", 0.6)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                       max_tokens=450, extra_body=extra, **kw)  # fmt: skip
    return r.choices[0]


def test_lynx_exits_early_with_a_traced_decision(lclient):
    from thinkctl.testbed import tasks

    plain, lynx, exits, right = 0, 0, 0, 0
    for i, p in enumerate(problems()):
        base = ask(lclient, p.prompt(), seed=i)
        plain += base.model_extra["thinkctl"]["thinking_tokens"]
        c = ask(lclient, p.prompt(), {"lynx": {"delta": 0.3}}, seed=i)
        trace = c.model_extra["thinkctl"]
        lynx += trace["thinking_tokens"]
        right += tasks.is_correct(p, c.message.content or "")
        assert trace["controllers"] == ["lynx"]
        scored = [e for e in trace["events"] if e["controller"] == "lynx"]
        assert scored, "every testbed trace has a cue"
        for k, e in enumerate(scored):
            assert e["cue_index"] == k and 0 <= e["score"] <= 1 and e["delta"] == 0.3
        if trace["exit_reason"] == "lynx":
            exits += 1
            last = scored[-1]
            assert last["reason"] == "lynx" and last["forced_tokens"] >= 1
            assert "\\boxed{" in c.message.content  # the inducer opens the answer
    assert exits >= N // 4
    assert lynx < 0.85 * plain  # the same seeds think clearly less with exits on
    assert right >= N - 3


def test_a_delta_below_the_calibration_floor_never_exits(lclient):
    floor = 1 / (ProbeArtifact.load(PROBE).calibration.n0 + 1)
    for i, p in enumerate(problems(6)):
        c = ask(lclient, p.prompt(), {"lynx": {"delta": floor / 2}}, seed=i)
        trace = c.model_extra["thinkctl"]
        assert trace["exit_reason"] == "natural"
        assert all(e["reason"] == "probe" for e in trace["events"])


def test_effort_maps_through_the_probe_when_lynx_is_asked(lclient, lynx_server):
    artifact = ProbeArtifact.load(PROBE)
    point = point_for_effort(artifact.meta.effort, 0.75)  # "high"
    assert point.threshold is not None  # the shipped map puts a score threshold there
    problem = [p for p in problems(40) if p.difficulty == 5][0]
    before = lynx_server.metric("thinkctl_probe_evaluations_total")
    c = ask(lclient, problem.prompt(), {"lynx": True}, reasoning_effort="high", seed=1)
    trace = c.model_extra["thinkctl"]
    assert "lynx" in trace["controllers"]
    scored = [e for e in trace["events"] if e["controller"] == "lynx"]
    assert scored and {e["threshold"] for e in scored} == {point.threshold}
    for e in scored:  # the rule: exit exactly when the score clears the threshold
        assert (e["reason"] == "lynx") == (e["score"] > point.threshold)
    assert lynx_server.metric("thinkctl_probe_evaluations_total") > before
    off = ask(lclient, problem.prompt(), {"lynx": False}, reasoning_effort="high", seed=1)
    assert "lynx" not in off.model_extra["thinkctl"]["controllers"]


def test_effort_alone_is_the_combined_point_of_the_bundle(lclient):
    """The shipped bundle came from one calibrate run, so effort means its combined point:
    the LYNX threshold and the budget chosen together (calibration/combined.py)."""
    from thinkctl.server.effort import EffortMap

    card = lclient.models.list().data[0].model_extra["thinkctl"]["effort"]
    assert card["policy"] == "combined"
    point = EffortMap.load(PROBE.parent).combined_point(0.75)  # "high"
    assert point.threshold is not None
    problem = [p for p in problems(40) if p.difficulty == 5][0]
    trace = ask(lclient, problem.prompt(), reasoning_effort="high", seed=1).model_extra["thinkctl"]
    scored = [e for e in trace["events"] if e["controller"] == "lynx"]
    assert scored and {e["threshold"] for e in scored} == {point.threshold}
    budgets = [e for e in trace["events"] if e["reason"] == "query_budget"]
    assert len(budgets) == (point.query_effort is not None)


def test_cues_short_of_the_floor_are_counted_not_scored(lclient):
    artifact = ProbeArtifact.load(PROBE)
    # Difficulty 5: the first pass's cue comes early and the re-checks run on well past it.
    problem = [p for p in problems(40) if p.difficulty == 5][0]
    floor = 100  # past the first pass of a difficulty-5 problem: its cue is held
    r = lclient.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": problem.prompt()}], max_tokens=450,
        temperature=0.6, seed=1, extra_body={"return_token_ids": True, "thinkctl": {
            "lynx": {"delta": 0.05, "min_thinking_tokens": floor}}},
    )  # fmt: skip
    choice = r.choices[0]
    trace = choice.model_extra["thinkctl"]
    scored = [e for e in trace["events"] if e["controller"] == "lynx"]
    assert {e["min_thinking"] for e in scored} <= {floor}
    # Thinking opens in the prompt, so the step that processes the cue at output position
    # i holds i + 1 thinking tokens: cues short of the floor are counted, not scored.
    ids = choice.model_extra["token_ids"][: trace["thinking_tokens"]]
    cues = [i for i, t in enumerate(ids) if t in artifact.meta.features.cue_token_ids]
    held = [i for i in cues if i + 1 < floor]
    assert held, "the first pass's cue came before the floor"
    assert [e["at"] for e in scored] == [i + 1 for i in cues if i not in held]
    assert [e["cue_index"] for e in scored] == list(range(len(held), len(cues)))


def test_max_accuracy_loss_exits_on_its_certified_threshold(lclient):
    risk = {p.epsilon: p for p in ProbeArtifact.load(PROBE).meta.risk}
    point = risk[0.01]
    assert point.threshold is not None  # the shipped calibration certifies one at 1 point
    exits = 0
    for i, p in enumerate(problems(8)):
        c = ask(lclient, p.prompt(), {"lynx": {"max_accuracy_loss": 0.01}}, seed=i)
        trace = c.model_extra["thinkctl"]
        scored = [e for e in trace["events"] if e["controller"] == "lynx"]
        assert all(e["threshold"] == point.threshold and e["max_accuracy_loss"] == 0.01
                   for e in scored)  # fmt: skip
        exits += trace["exit_reason"] == "lynx"
    assert exits > 0
    with pytest.raises(openai.BadRequestError) as err:
        ask(lclient, "x", {"lynx": {"max_accuracy_loss": 0.01, "delta": 0.05}})
    assert err.value.body["param"] == "thinkctl.lynx.max_accuracy_loss"
    with pytest.raises(openai.BadRequestError) as err:
        ask(lclient, "x", {"lynx": {"max_accuracy_loss": min(risk) / 2}})
    assert "calibrated for max_accuracy_loss" in err.value.body["message"]


def test_models_card_and_start_up_log_describe_the_probe(lclient, lynx_server):
    card = lclient.models.list().data[0].model_extra["thinkctl"]["lynx"]
    assert card["layers"] == [1, 2, 3, 4] and card["n_cal_class0"] >= 200
    assert card["confidence"] is True  # the shipped probe reads the confidence input
    assert card["path"] == str(PROBE.resolve()) and card["source"] == "the calibration folder"
    # The start-up log says the same (INFO, before uvicorn starts), and effort's policy.
    log = lynx_server.log.read_text()
    assert f"LYNX probe: {PROBE.resolve()}, from the calibration folder" in log
    assert "Effort by default: one policy of the probe's exit and the per-query budget" in log
    assert "Answer reserve: at most" in log


def test_lynx_without_a_probe_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as exc:
        ask(client, problems(1)[0].prompt(), {"lynx": True})
    err = exc.value.body
    assert err["param"] == "thinkctl.lynx" and "--probe" in err["message"]


GENERATE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from thinkctl.calibration import datasets, traces
    from thinkctl.probes.artifact import ProbeArtifact

    if __name__ == "__main__":
        art = ProbeArtifact.load(sys.argv[1])
        spec = art.meta.features
        gen = traces.Generator(sys.argv[2], spec, 0, {"kv_cache_memory_bytes": 1 << 30})
        data = datasets.load("testbed")
        close = [spec.think_end_id, *gen.tok.encode("\\\\boxed{", add_special_tokens=False)]
        # One question per batch, as the server decodes them one request at a time: bf16
        # logits of a batch of 8 differ from those of a batch of 1 in the last bits.
        shards = [gen.shard(data, [q], q, temperature=0.0, top_p=1.0, max_tokens=450,
                            close_ids=close, answer_tokens=4) for q in range(int(sys.argv[4]))]
        traces.save(traces.concat(shards), Path(sys.argv[3]))
""")


def test_server_features_equal_calibration_features(lclient, tmp_path):
    """The same greedy traces: the probe scores the server computes at each cue equal the
    scores of the features calibration recorded, at the same cue positions. The shipped
    probe reads the confidence value too, so both of its inputs are compared."""
    from thinkctl.calibration import datasets, traces

    assert ProbeArtifact.load(PROBE).meta.features.confidence
    n = 8
    script, out = tmp_path / "gen.py", tmp_path / "shard.safetensors"
    script.write_text(GENERATE)
    r = subprocess.run([sys.executable, str(script), str(PROBE), str(ROOT / "testbed" / "model"),
                        str(out), str(n)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    recorded = traces.load(out)
    probe = ProbeArtifact.load(PROBE).probe
    data = datasets.load("testbed")
    compared = 0
    for q in range(n):
        mask = recorded.events.trace == q
        want_pos = recorded.events.position[mask] + 1  # scored at the step after the cue
        want = probe.prob(recorded.events.features[mask])
        c = ask(lclient, data.questions[q], {"lynx": {"delta": 0.001}}, temperature=0.0)
        got = [e for e in c.model_extra["thinkctl"]["events"] if e["controller"] == "lynx"]
        assert [e["at"] for e in got] == list(want_pos)
        assert np.allclose([e["score"] for e in got], want, atol=1e-4)
        compared += len(got)
    assert compared >= n


@pytest.mark.parametrize(
    "damage, message",
    [("corrupt", "checksum"), ("other_model", "another model"), ("other_exit", "exit sequence")],
)
def test_a_bad_probe_is_refused_at_start(tmp_path, damage, message):
    probe = tmp_path / "probe"
    shutil.copytree(PROBE, probe, ignore=shutil.ignore_patterns("work"))
    model = MODEL
    if damage == "corrupt":
        raw = bytearray((probe / TENSOR_FILE).read_bytes())
        raw[len(raw) // 2] ^= 0x55
        (probe / TENSOR_FILE).write_bytes(bytes(raw))
    elif damage == "other_exit":  # calibrated on another forced-exit sequence
        meta = json.loads((probe / "probe.json").read_text())
        meta["training"]["exit_ids"] = [1, 2, 3]
        (probe / "probe.json").write_text(json.dumps(meta))
    else:
        model = "smollm2-135m-instruct"  # another model: hidden size 576, other vocabulary
    r = subprocess.run([sys.executable, "-m", "thinkctl", "serve", "--model", model, "--probe",
                        str(probe)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode != 0
    assert "refusing probe" in r.stderr and message in r.stderr


def test_a_found_probe_for_another_exit_sequence_is_refused_and_can_be_opted_out_of(tmp_path):
    """The probe serve finds by itself is checked as --probe's is, and the refusal names the
    difference and the way out."""
    folder = tmp_path / "model"
    shutil.copytree(ROOT / "testbed" / "model", folder, ignore=shutil.ignore_patterns("work"))
    meta = json.loads((folder / "probe" / "probe.json").read_text())
    meta["training"]["exit_ids"] = [1, 2, 3]
    (folder / "probe" / "probe.json").write_text(json.dumps(meta))
    r = subprocess.run([sys.executable, "-m", "thinkctl", "serve", "--model", str(folder)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode != 0
    assert "refusing probe" in r.stderr and "from the calibration folder" in r.stderr
    assert "exit sequence [1, 2, 3]" in r.stderr and "--no-probe" in r.stderr
