"""Imports flow one way: server -> probes <- calibration; controllers are engine-free."""

import json
import subprocess
import sys

import pytest


def modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("probes", {"server", "calibration", "vllm", "fastapi"}),
        ("probes.effort_table", {"server", "calibration", "vllm", "fastapi"}),
        ("probes.artifact", {"server", "calibration", "vllm", "fastapi"}),
        ("probes.capture", {"server", "calibration", "vllm", "fastapi"}),
        ("calibration.cli", {"server"}),
        ("calibration.recorder", {"server"}),
        ("server.controllers.lynx", {"vllm", "fastapi", "starlette", "calibration"}),
        ("calibration.effort", {"server"}),
        ("calibration", {"server"}),
        ("server.controllers.spec", {"vllm", "fastapi", "starlette", "calibration"}),
        ("server.controllers.stack", {"vllm", "fastapi", "starlette", "calibration"}),
    ],
)
def test_forbidden_imports(module, forbidden):
    assert not top(modules_after_import(module)) & forbidden


def test_routes_never_import_the_logits_processor():
    mods = modules_after_import("server.app")
    assert "server.engine.logits_processor" not in mods
    assert "calibration" not in top(mods)
