"""`thinkctl doctor` on this machine (CPU): the testbed without a probe, and testbed-r1
with the shipped probe serve finds; every check passes, and the report says what was
checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_the_doctor_passes_on_the_testbed_without_a_probe(tmp_path):
    report = doctor(tmp_path, "--model", "testbed", "--no-probe")
    names = [c["check"] for c in report["checks"]]
    assert names == ["capture at batch size 1", "capture at batch size 4",
                     "capture at batch size 16", "budget exit", "TS step"]  # fmt: skip
    assert report["ok"] and report["facts"]["runner"] == "v1" and "probe" not in report["facts"]
    assert report["facts"]["control_cost"]["ratio"] > 0


def test_the_doctor_passes_on_testbed_r1_with_the_probe_serve_finds(tmp_path):
    """No --probe: `thinkctl serve --model testbed-r1` finds its calibration bundle's."""
    report = doctor(tmp_path, "--model", "testbed-r1")
    lynx = next(c for c in report["checks"] if c["check"] == "LYNX exit")
    assert lynx["ok"] and lynx["exits"] > 0
    probe = report["facts"]["probe"]
    assert probe["source"] == "the calibration folder"
    assert (Path(probe["path"]) / "probe.json").read_bytes() == (
        embedded.shipped_folder("testbed-r1") / "probe" / "probe.json"
    ).read_bytes()
