"""The `thinkctl` command line, without starting an engine."""

import os
import subprocess
import sys


def thinkctl(*args: str, env: dict | None = None, timeout: int = 120):
    return subprocess.run(
        [sys.executable, "-m", "thinkctl", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_serve_help_lists_vllm_engine_args_and_ours():
    out = thinkctl("serve", "--help").stdout
    for flag in ["--max-model-len", "--dtype", "--tensor-parallel-size", "--gpu-memory-utilization",
                 "--enforce-eager", "--api-key", "--reasoning-field", "--answer-inducer"]:  # fmt: skip
        assert flag in out


def test_an_unreachable_hub_id_fails_with_a_clear_message():
    r = thinkctl("serve", "--model", "nobody/not-a-model", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode != 0
    assert "nobody/not-a-model" in r.stderr and "--model PATH" in r.stderr
