"""`thinkctl doctor` on this machine (CPU): the testbed, and testbed-r1 with its shipped
probe; every check passes, and the report says what was checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thinkctl.models import embedded

pytestmark = pytest.mark.engine


def doctor(tmp_path, *args: str) -> dict:
    out = tmp_path / "doctor.json"
    r = subprocess.run([sys.executable, "-m", "thinkctl", "doctor", *args, "--enforce-eager",
                        "--json", str(out)], capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "every check passed" in r.stdout
    return json.loads(out.read_text())


def test_the_doctor_passes_on_the_testbed(tmp_path):
    report = doctor(tmp_path, "--model", "testbed")
    names = [c["check"] for c in report["checks"]]
    assert names == ["capture at batch size 1", "capture at batch size 4",
                     "capture at batch size 16", "budget exit", "TS step"]  # fmt: skip
    assert report["ok"] and report["facts"]["runner"] == "v1"
    assert report["facts"]["control_cost"]["ratio"] > 0


def test_the_doctor_passes_on_testbed_r1_with_its_probe(tmp_path):
    probe = embedded.shipped_folder("testbed-r1") / "probe"
    report = doctor(tmp_path, "--model", "testbed-r1", "--probe", str(probe))
    lynx = next(c for c in report["checks"] if c["check"] == "LYNX exit")
    assert lynx["ok"] and lynx["exits"] > 0
