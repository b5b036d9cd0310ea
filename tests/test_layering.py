"""Imports flow one way, and each decision has one home.

- controllers and `probes/` import neither vLLM nor FastAPI (checked in a fresh
  interpreter, so nothing they pull in transitively sneaks past);
- outside tests and `bench/`, only the engine package (`engine/`) imports vLLM, even
  inside a function (checked on the source);
- `server/` never imports `calibration/` or `bench/`; `testbed/` imports nothing of
  `calibration/`, `server/` or `bench/`;
- the end-of-thinking delimiter is written out only by the model-folder reader.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "engine", "probes", "calibration", "testbed", "bench", "recipes", "thinkctl")


def modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


ENGINE_FREE = [
    "probes",
    *(f"probes.{p.stem}" for p in sources("probes") if p.stem != "__init__"),
    *(f"server.controllers.{p.stem}" for p in sources("server/controllers")),
]


@pytest.mark.parametrize("module", ENGINE_FREE)
def test_controllers_and_probes_import_neither_vllm_nor_fastapi(module):
    forbidden = {"vllm", "fastapi", "starlette", "calibration", "bench"}
    if module.startswith("probes"):
        forbidden |= {"server", "engine"}
    assert not top(modules_after_import(module)) & forbidden


def test_only_the_engine_package_imports_vllm():
    folders = [f for f in PACKAGES if f not in ("engine", "bench")]
    offenders = [str(p.relative_to(ROOT)) for p in sources(*folders) if "vllm" in imported(p)]
    assert offenders == []


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("server", {"calibration", "bench"}),
        ("testbed", {"calibration", "server", "bench"}),
        ("probes", {"server", "engine", "calibration", "bench", "testbed"}),
        ("calibration", {"server", "bench"}),
    ],
)
def test_imports_never_run_back_up(folder, forbidden):
    offenders = {str(p.relative_to(ROOT)): imported(p) & forbidden for p in sources(folder)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_routes_never_import_the_logits_processor():
    mods = modules_after_import("server.app")
    assert "engine.logits_processor" not in mods
    assert "calibration" not in top(mods)


def _string_literals(path: Path) -> list[str]:
    """String constants of a module, docstrings excepted."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_the_end_of_thinking_is_spelled_only_by_the_model_folder_reader():
    spelled = [
        str(p.relative_to(ROOT))
        for p in sources(*PACKAGES)
        if any("</think>" in s for s in _string_literals(p))
    ]
    assert spelled == ["probes/model_folder.py"]
