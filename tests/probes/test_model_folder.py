"""The model-folder reader: one set of conventions per folder, and every command that
closes thinking (serve, calibrate, bench) builds the same close sequence from it."""

import json
import shutil
from argparse import Namespace
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from thinkctl.errors import FolderError
from thinkctl.probes import model_folder
from thinkctl.probes.model_folder import Conventions

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"


def _served_close(model: Path, tok) -> list[int]:
    """What `thinkctl serve` forces when a budget closes thinking (server/plan.py)."""
    from thinkctl.server.cli import conventions
    from thinkctl.server.config import ServerConfig
    from thinkctl.server.model_info import ModelInfo
    from thinkctl.server.plan import plan
    from thinkctl.server.protocol import ChatCompletionRequest

    flags = Namespace(**dict.fromkeys(Conventions.keys()))
    config = ServerConfig(model_name="m", conventions=conventions(flags, str(model)))
    info = ModelInfo("m", model_folder.ThinkTokens.of(config.conventions, tok), 512)
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "1"}],
                                thinkctl={"max_thinking_tokens": 3})  # fmt: skip
    return plan(req, info, config).spec.budget.close


def _calibration_close(model: Path, tok, tmp_path: Path) -> list[int]:
    from thinkctl.calibration.cli import parse, think_tokens

    args = parse(["--model", str(model), "--data", "q.jsonl", "--out", str(tmp_path / "probe")])
    return think_tokens(str(model), args, tok).close()


def _bench_close(model: Path, tok) -> list[int]:
    from thinkctl.bench.accuracy import think_tokens

    return think_tokens(model, tok).close()


@pytest.fixture(scope="module")
def bare_folder(tmp_path_factory) -> Path:
    """The testbed's folder without its thinkctl.json: the reader's defaults apply."""
    folder = tmp_path_factory.mktemp("bare") / "model"
    shutil.copytree(TESTBED, folder, ignore=shutil.ignore_patterns("probe", "*.safetensors"))
    (folder / model_folder.SETTINGS_FILE).unlink()
    return folder


@pytest.mark.parametrize(
    "which, inducer", [("testbed", "\\boxed{"), ("bare", model_folder.ANSWER_INDUCER)]
)
def test_serve_calibrate_and_bench_close_thinking_alike(which, inducer, bare_folder, tmp_path):
    model = TESTBED if which == "testbed" else bare_folder
    tok = AutoTokenizer.from_pretrained(model)
    expected = [tok.convert_tokens_to_ids(model_folder.THINK_END),
                *tok.encode(inducer, add_special_tokens=False)]  # fmt: skip
    assert _served_close(model, tok) == expected
    assert _calibration_close(model, tok, tmp_path) == expected
    assert _bench_close(model, tok) == expected


def test_layers_stack_defaults_preset_folder_then_flags(tmp_path):
    (tmp_path / model_folder.SETTINGS_FILE).write_text(json.dumps({"answer_inducer": "A:"}))
    preset = {"answer_inducer": "P:", "think_end": "<end>"}
    conv = model_folder.conventions(tmp_path, preset, {"wait_string": "Hmm", "think_end": None})
    assert conv == Conventions(think_end="<end>", answer_inducer="A:", wait_string="Hmm")
    assert model_folder.conventions("org/hub-id") == Conventions()  # a hub id: defaults


def test_unknown_keys_in_thinkctl_json_are_refused(tmp_path):
    (tmp_path / model_folder.SETTINGS_FILE).write_text(json.dumps({"answer": "x"}))
    with pytest.raises(FolderError, match="unknown keys"):
        model_folder.conventions(tmp_path)


def test_delimiters_that_are_not_one_token_leave_the_model_non_thinking():
    tok = AutoTokenizer.from_pretrained(TESTBED)
    think = model_folder.ThinkTokens.of(Conventions(think_end="no such token"), tok)
    assert not think.thinks
    with pytest.raises(FolderError, match="not one token"):
        think.close()


def test_a_calibration_is_found_by_hub_id_in_the_cache_or_in_the_model_folder(
    tmp_path, monkeypatch
):
    from thinkctl.probes.effort_table import EFFORT_FILE, fit
    from thinkctl.server.effort import EffortMap

    monkeypatch.setenv("THINKCTL_CACHE", str(tmp_path / "cache"))
    # A hub id: the cache, by model id.
    where = model_folder.calibration_dir("org/some-model")
    assert where == tmp_path / "cache" / "calibration" / "org--some-model"
    assert not EffortMap.load("org/some-model").calibrated
    where.mkdir(parents=True)
    (where / EFFORT_FILE).write_text(json.dumps(fit([40, 80, 120])))
    found = EffortMap.load("org/some-model")
    assert found.calibrated and found.source == str(where) and found.natural_mean == 80.0
    # The probe beside it, once calibrate has written one (a folder without probe.json is
    # no probe: an interrupted run leaves only its trace shards there).
    assert model_folder.probe_dir("org/some-model") is None
    (where / "probe" / "work").mkdir(parents=True)
    assert model_folder.probe_dir("org/some-model") is None
    (where / "probe" / "probe.json").write_text("{}")
    assert model_folder.probe_dir("org/some-model") == where / "probe"
    # A writable model folder holds its own; an explicit folder wins over both.
    folder = tmp_path / "model"
    folder.mkdir()
    assert model_folder.calibration_dir(folder) == folder
    assert model_folder.calibration_dir(folder, where) == where
    assert EffortMap.load(folder, where).calibrated and not EffortMap.load(folder).calibrated
    # A read-only folder without one: the cache, by its resolved path (os.access stubbed:
    # this suite may run as root, who can write anywhere).
    monkeypatch.setattr(model_folder.os, "access", lambda path, mode: False)
    key = str(folder.resolve()).strip("/").replace("/", "--")
    assert model_folder.calibration_dir(folder) == where.parent / key
