"""Imports flow one way, under one namespace, and each decision has one home.

The packages, lowest first (a package imports only those on its list):

    thinkctl.errors   the error tree; imports nothing of thinkctl
    probes            shared: cues, capture, features, conformal maths, model-folder facts
    control           the batched control core and its controllers (runs in vLLM's worker)
    models            the catalogue, the embedded models and the one resolver
    engine            the vLLM adapter: the only package that imports vLLM
    server            HTTP; calibration: `thinkctl calibrate`; testbed; recipes
    bench             measures everything, so it may import everything

Besides the lists:
- every import names the `thinkctl.` namespace (no bare `import server...`);
- the module import graph, lazy imports included, has no cycle;
- control and probes pull in neither vLLM nor FastAPI, even transitively (checked in a
  fresh interpreter);
- no package opens another package's files by path (`Path(__file__)` never climbs out);
- the end-of-thinking delimiter is written out only by the model-folder reader.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> its folder in the repository (pyproject.toml's package-dir)
FOLDERS = {
    "thinkctl": "thinkctl", "probes": "probes", "control": "control", "models": "models",
    "engine": "engine", "server": "server", "calibration": "calibration", "testbed": "testbed",
    "recipes": "recipes", "bench": "bench",
}  # fmt: skip
OURS = set(FOLDERS) - {"thinkctl"}
# package -> the packages it may import ("errors": thinkctl.errors)
ALLOWED = {
    "probes": {"errors"},
    "control": {"errors", "probes"},
    # models/embedded.py builds testbed-r1's folder with the testbed's own code
    "models": {"errors", "probes", "testbed"},
    "engine": {"errors", "probes", "control"},
    "server": {"errors", "probes", "control", "models", "engine"},
    "calibration": {"errors", "probes", "models", "engine", "testbed"},
    "testbed": {"errors", "probes", "models", "engine"},
    "recipes": {"errors", "probes", "models", "testbed"},
    "thinkctl": {"errors"},  # the command imports its subcommands by name, when asked
}


def sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / FOLDERS[pkg]).rglob("*.py")
                  if "results" not in p.relative_to(ROOT).parts)  # fmt: skip


def package_of(path: Path) -> str:
    return next(k for k, v in FOLDERS.items() if path.relative_to(ROOT).parts[0] == v)


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT / FOLDERS[package_of(path)]).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    pkg = package_of(path)
    return ".".join(["thinkctl", *([] if pkg == "thinkctl" else [pkg]), *parts])


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # maybe submodules
    return names


ALL_MODULES = {module_of(p) for p in sources(*FOLDERS)}


def our_imports(path: Path) -> set[str]:
    """The thinkctl modules `path` imports (a `from X import name` counts as X.name when
    that is a module)."""
    return {m for m in imports(path) if m in ALL_MODULES}


def layer(module: str) -> str:
    """thinkctl.server.plan -> server; thinkctl.errors -> errors; thinkctl.cli -> thinkctl."""
    part = module.split(".")[1] if "." in module else "thinkctl"
    return part if part in OURS or part == "errors" else "thinkctl"


def test_every_import_names_the_thinkctl_namespace():
    bare = {
        str(p.relative_to(ROOT)): sorted(m for m in imports(p) if m.split(".")[0] in OURS)
        for p in [*sources(*FOLDERS), *sorted((ROOT / "tests").rglob("*.py"))]
    }
    assert {k: v for k, v in bare.items() if v} == {}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_packages_below_it(package):
    offenders = {}
    for path in sources(package):
        if module_of(path) == "thinkctl.errors":
            wrong = {layer(m) for m in our_imports(path)}
        else:
            wrong = {layer(m) for m in our_imports(path)} - ALLOWED[package] - {package}
        if wrong:
            offenders[str(path.relative_to(ROOT))] = sorted(wrong)
    assert offenders == {}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` (module -> modules it imports) as a path, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> list[str]:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if state.get(n) is None and (found := visit(n, [*path, n])):
                return found
        state[m] = 2
        return []

    for m in sorted(graph):
        if state.get(m) is None and (found := visit(m, [m])):
            return found
    return []


def test_the_module_import_graph_has_no_cycle():
    graph = {module_of(p): our_imports(p) - {module_of(p)} for p in sources(*FOLDERS)}
    assert find_cycle(graph) == []


def test_the_errors_module_imports_nothing_of_thinkctl():
    assert our_imports(ROOT / "thinkctl" / "errors.py") == set()


def modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


ENGINE_FREE = sorted(module_of(p) for p in sources("probes", "control"))


@pytest.mark.parametrize("module", ENGINE_FREE)
def test_control_and_probes_pull_in_neither_vllm_nor_fastapi(module):
    mods = modules_after_import(module)
    assert not {m.split(".")[0] for m in mods} & {"vllm", "fastapi", "starlette"}
    above = {"engine", "server", "models", "calibration", "bench", "testbed", "recipes"}
    assert {layer(m) for m in mods if m.startswith("thinkctl.")} & above == set()


def test_only_the_engine_package_imports_vllm():
    packages = [p for p in FOLDERS if p not in ("engine", "bench")]
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources(*packages)
        if any(m.split(".")[0] == "vllm" for m in imports(p))
    ]
    assert offenders == []


def test_routes_never_import_the_logits_processor():
    mods = modules_after_import("thinkctl.server.app")
    assert "thinkctl.engine.logits_processor" not in mods
    assert not any(m.startswith("thinkctl.calibration") for m in mods)


def _climbs_out(node: ast.AST) -> bool:
    """`Path(__file__).parents[i]` or `.parent.parent`: a path outside the module's package."""
    text = ast.unparse(node)
    return "__file__" in text and (".parents" in text or ".parent.parent" in text)


def test_no_package_opens_another_packages_files_by_path():
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources(*FOLDERS)
        if any(
            _climbs_out(n)
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.Attribute | ast.Subscript)
        )  # fmt: skip
    ]
    assert offenders == []


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
        for p in sources(*FOLDERS)
        if any("</think>" in s for s in _string_literals(p))
    ]
    assert spelled == ["probes/model_folder.py"]


def test_the_layering_rules_can_fail(tmp_path):
    """The checks above see what they look for: a bare import and a climb out of a package."""
    bad = tmp_path / "bad.py"
    bad.write_text("from server.plan import plan\nP = Path(__file__).parents[1] / 'x'\n")
    assert imports(bad) == {"server.plan", "server.plan.plan"}
    tree = ast.parse(bad.read_text())
    assert any(_climbs_out(n) for n in ast.walk(tree) if isinstance(n, ast.Subscript))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
