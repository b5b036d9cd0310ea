"""A plain, non-editable install: thinkctl's wheel, built from this checkout and installed
into a fresh virtual environment, serves the embedded testbed with per-query effort (so the
length predictor ships in the wheel), from a folder outside the checkout.

The fresh environment sees this one's installed packages (vLLM, torch, ...) through a path
line in a .pth file, which adds the folder to sys.path without running that folder's own
.pth files, so the checkout's editable install is not on the path; thinkctl itself comes
only from the wheel.
"""

from __future__ import annotations

import email
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from thinkctl.bench.server_process import start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
# What only calibrate, bench, train or the SmolLM2 conversion need: never a core dependency.
NOT_CORE = {"matplotlib", "scikit-learn", "math-verify", "gguf", "accelerate", "trl", "openai"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the registry need not be reached, this environment's setuptools builds.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True,
                   timeout=600)  # fmt: skip
    (path,) = out.glob("thinkctl-*.whl")
    return path


def test_the_wheel_installs_one_namespace_with_the_testbeds_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"thinkctl"}
    for shipped in ("thinkctl/testbed/model/length/predictor.json",
                    "thinkctl/testbed/model/length/predictor.safetensors",
                    "thinkctl/testbed/model/effort.json", "thinkctl/testbed/model/probe/probe.json",
                    "thinkctl/testbed/r1/length/predictor.json", "thinkctl/models/models.json",
                    "thinkctl/testbed/tokenizers/r1_distill/tokenizer_config.json",
                    "thinkctl/server/routes/chat.py", "thinkctl/control/batch.py"):  # fmt: skip
        assert shipped in names


def test_the_core_dependencies_are_what_serve_needs(wheel):
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    )
    requires = email.message_from_bytes(meta).get_all("Requires-Dist")
    core = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower() for r in requires
            if "extra ==" not in r}  # fmt: skip
    assert {"fastapi", "uvicorn", "transformers", "safetensors"} <= core
    assert core & NOT_CORE == set()
    extras = email.message_from_bytes(meta).get_all("Provides-Extra")
    assert {"cpu", "gpu", "calibrate", "bench", "train"} <= set(extras)


@pytest.mark.engine
def test_the_installed_wheel_serves_per_query_effort(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    own = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(own) / "zz_shared_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)  # fmt: skip
    where = subprocess.run([python, "-c", "import thinkctl.server; print(thinkctl.server.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert where.stdout.strip().startswith(own), where.stdout  # the wheel's, not the checkout's
    proc, url = start_server("testbed", tmp_path / "serve.log", python=str(python), cwd=tmp_path)
    try:
        card = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]["thinkctl"]
        # The wheel's calibration bundle, probe included, found with no flag.
        assert card["effort"]["calibration"].startswith(own)
        assert card["lynx"]["path"].startswith(own) and card["effort"]["policy"] == "combined"
        body = {"model": "testbed", "max_tokens": 300, "temperature": 0.6, "seed": 0,
                "messages": [{"role": "user", "content": "compute 3 ; A + 4 ; B * 2"}],
                "reasoning_effort": "low", "thinkctl": {"effort_policy": "query"}}  # fmt: skip
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        events = r.json()["choices"][0]["thinkctl"]["events"]
        assert [e["reason"] for e in events if e["reason"] == "query_budget"] == ["query_budget"]
    finally:
        stop_server(proc)
