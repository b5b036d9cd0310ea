"""The one model resolver (models/resolve.py): what is loaded for a name, a folder or a hub
id, with which catalogue entry, and the refusals; `thinkctl models`. No engine is started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import thinkctl
from thinkctl.errors import ModelUnavailable, UnknownModel
from thinkctl.models import embedded, resolve

DLER = "nvidia/DLER-R1-1.5B-Research"
L1_MAX = "l3lab/L1-Qwen-1.5B-Max"


@pytest.fixture
def no_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache and no model folder, whatever this machine holds."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv(resolve.MODEL_DIR_ENV, raising=False)
    return tmp_path


def test_the_default_and_the_embedded_testbed_get_the_testbed_preset():
    for model in (None, "testbed"):
        target = resolve.resolve(model)
        assert (target.name, target.kind, target.entry.id) == ("testbed", "embedded", "testbed")
        assert target.load == str(embedded.testbed_folder())
    assert resolve.locate(target.entry).path == str(embedded.testbed_folder())


@pytest.mark.parametrize("name", embedded.NAMES)
def test_every_embedded_name_resolves_to_its_built_folder(name):
    target = resolve.resolve(name)
    assert target.kind == "embedded" and target.name == name
    assert (target.folder / "config.json").is_file()
    assert target.load == str(embedded.ensure(name))
    if name == embedded.TESTBED_R1:  # served from the cache, shipped in testbed/r1
        assert target.shipped == embedded.testbed_folder("r1") != target.folder


def test_testbed_concise_is_served_by_name_with_its_preset():
    target = resolve.resolve("testbed-concise")
    assert target.entry.id == "testbed-concise"
    where = resolve.locate(target.entry)
    assert where.kind == "embedded" and where.path == str(embedded.ensure("testbed-concise"))


def test_a_local_folder_takes_only_an_explicit_preset():
    folder = str(embedded.testbed_folder())
    assert resolve.resolve(folder).entry is None
    target = resolve.resolve(folder, L1_MAX)
    assert (target.load, target.name, target.kind) == (folder, folder, "folder")
    assert target.entry.id == L1_MAX


def test_an_unknown_name_lists_what_is_known(tmp_path):
    with pytest.raises(UnknownModel) as exc:
        resolve.resolve("testbd")
    assert "'testbd'" in exc.value.message
    assert all(name in exc.value.message for name in (*embedded.NAMES, DLER))
    with pytest.raises(UnknownModel, match="no config.json"):
        resolve.resolve(str(tmp_path))  # a folder, but no model in it
    hub = resolve.resolve("someone/some-model")  # any other org/name is a hub id
    assert (hub.load, hub.kind, hub.entry) == ("someone/some-model", "hub", None)


def test_a_model_dir_copy_is_served_under_its_catalogue_id(monkeypatch, no_cache):
    copy = no_cache / "models" / DLER
    copy.mkdir(parents=True)
    (copy / "config.json").write_text("{}")
    monkeypatch.setenv(resolve.MODEL_DIR_ENV, str(no_cache / "models"))
    target = resolve.resolve(DLER)
    assert (target.load, target.name, target.entry.id) == (str(copy), DLER, DLER)


def test_a_hugging_face_cache_copy_is_found(no_cache):
    snap = no_cache / "hub" / "models--nvidia--DLER-R1-1.5B-Research"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("abc123")
    (snap / "snapshots" / "abc123").mkdir(parents=True)
    (snap / "snapshots" / "abc123" / "config.json").write_text("{}")
    where = resolve.locate(resolve.load().find(DLER))
    assert where.kind == "hf-cache" and Path(where.path) == snap / "snapshots" / "abc123"


def test_an_unreachable_catalogue_id_names_the_id_and_how_to_serve_a_copy(monkeypatch, no_cache):
    monkeypatch.setattr(resolve, "_hub_offline", lambda: True)
    with pytest.raises(ModelUnavailable) as exc:
        resolve.resolve(L1_MAX)
    msg = exc.value.message
    assert repr(L1_MAX) in msg and f"--model /path/to/folder --preset {L1_MAX}" in msg
    assert f"$THINKCTL_MODEL_DIR/{L1_MAX}" in msg
    monkeypatch.setattr(resolve, "_hub_offline", lambda: False)  # then vLLM tries the hub
    assert resolve.resolve(L1_MAX).load == L1_MAX


def test_an_unknown_preset_is_refused_with_the_known_ids():
    with pytest.raises(UnknownModel, match="no catalogue model 'nope'.*testbed"):
        resolve.resolve(None, "nope")


def test_serve_refuses_an_unreachable_catalogue_id_before_starting_vllm(tmp_path):
    r = thinkctl("serve", "--model", L1_MAX,
                 env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})  # fmt: skip
    assert r.returncode != 0
    assert repr(L1_MAX) in r.stderr and f"--preset {L1_MAX}" in r.stderr


def test_models_lists_every_entry_with_its_mechanism_and_availability():
    r = thinkctl("models")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert set(lines) == {m.id for m in resolve.load().models}
    assert lines["Vinnnf/Thinkless-1.5B-RL-DeepScaleR"][1] == "first_token"
    assert lines["testbed"][1] == "none" and lines["testbed"][-1] == "embedded"


def test_models_json_and_show():
    r = thinkctl("models", "--json")
    data = json.loads(r.stdout)
    assert {d["id"] for d in data} == {m.id for m in resolve.load().models}
    qwen = next(d for d in data if d["id"] == "Qwen/Qwen3-8B")
    assert qwen["effort"]["none"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert qwen["available"].split(":")[0] in ("hub", "hf-cache", "local")
    shown = thinkctl("models", "show", "l3lab/L1-Qwen-1.5B-Exact").stdout
    assert "prompt_suffix" in shown and "'Think for {n} tokens.'" in shown
    one = json.loads(thinkctl("models", "show", "testbed", "--json").stdout)
    assert one["embedded"] == "testbed" and one["available"].startswith("embedded")
    missing = thinkctl("models", "show", "nope")
    assert missing.returncode == 2 and "thinkctl models" in missing.stderr


def test_models_never_imports_vllm():
    code = ("import io, contextlib, sys; from thinkctl.models import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()): cli.main(['--json'])\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'vllm', 'torch', 'fastapi'}))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
