"""thinkctl's vLLM imports, and a check of them against a vLLM wheel that cannot be
installed here (the GPU build): every imported module and name present in its sources,
and the two logits-processor interfaces unchanged against the installed vLLM.

    python scripts/vllm_compat.py vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl
    (pip download vllm==0.33.0 --no-deps -d DIR fetches the wheel)

tests/engine/test_vllm_compat.py runs the same scan against the installed vLLM, with
imports and signatures.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "server", "probes", "control", "calibration", "bench", "testbed",
            "recipes", "models", "thinkctl")  # fmt: skip
INTERFACES = ("vllm/v1/sample/logits_processor/interface.py",
              "vllm/v1/worker/gpu/sample/logits_processor/interface.py")  # fmt: skip


def vllm_imports(root: Path = ROOT) -> set[tuple[str, str]]:
    """(module, name) of every `from vllm... import name` in thinkctl's sources."""
    found = set()
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vllm"):
                    found |= {(node.module, alias.name) for alias in node.names}
    return found


def check_wheel(wheel: Path) -> list[str]:
    """What thinkctl imports that the wheel lacks, and the interfaces that changed."""
    import vllm  # the installed one, for the interface comparison

    installed = Path(vllm.__file__).parent.parent
    problems = []
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for module, name in sorted(vllm_imports()):
            base = module.replace(".", "/")
            src = next((f for f in (f"{base}.py", f"{base}/__init__.py") if f in names), None)
            if src is None:
                problems.append(f"no module {module}")
            elif name not in z.read(src).decode() and f"{base}/{name}.py" not in names:
                problems.append(f"no {name} in {module}")
        for path in INTERFACES:
            if z.read(path).decode() != (installed / path).read_text():
                problems.append(f"{path} differs from the installed vLLM's")
    return problems


if __name__ == "__main__":
    found = check_wheel(Path(sys.argv[1]))
    print(f"{len(vllm_imports())} imports checked;", "; ".join(found) or "all present, "
          "both logits-processor interfaces unchanged")  # fmt: skip
    sys.exit(1 if found else 0)
