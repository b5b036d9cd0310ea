"""Start and stop a real `thinkctl serve` subprocess on 127.0.0.1 (benchmarks and tests)."""

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
) -> tuple[subprocess.Popen, str]:
    """(process, base URL) once /health answers; RuntimeError with the log's tail if not."""
    port = free_port()
    cmd = [sys.executable, "-m", "thinkctl", "serve", "--model", model, "--port", str(port),
           "--enforce-eager", "--uvicorn-log-level", "warning", *extra_args]  # fmt: skip
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"thinkctl serve exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"thinkctl serve did not become healthy:\n{_tail(log)}")
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
