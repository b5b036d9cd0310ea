"""SIGTERM drains: in-flight requests finish, new connections are refused, then the server
(and its engine processes) exit.

The premise, a request still running when the server stops accepting, is not left to timing:
while the CPU engine spins on both cores this test's process can be kept off the CPU for
seconds (a busy loop here saw a 6.0 s gap during one 6.3 s request), so the signal may come only
after the request ended. The server logs how many requests it drains once its sockets are
closed; a run that drained none is tried again, and one that drained a request must have
finished it.
"""

import json
import os
import re
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import MODEL, _start, problem_prompt

N = 16
LONG = {"model": MODEL, "messages": [{"role": "user", "content": problem_prompt()}],
        "max_tokens": 450, "n": N, "thinkctl": {"min_thinking_tokens": 440}}  # fmt: skip
# Two sequences at a time run LONG in eight waves, about 7 s here.
ENGINE_ARGS = ["--max-num-seqs", "2", "--uvicorn-log-level", "info"]
TRIES = 3
DRAINING = re.compile(r"draining (\d+) running and (\d+) queued")


def engine_children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def wait_until_refused(url: str, timeout: float = 10) -> None:
    address = urlsplit(url).hostname, urlsplit(url).port
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, f"still accepting connections {timeout} s after SIGTERM"
        time.sleep(0.01)


def drain_once(log: Path) -> int:
    """One SIGTERM during a streamed request; how many requests the server said it drained."""
    proc, url = _start(log, ENGINE_ARGS, {})
    try:
        children = engine_children(proc.pid)
        assert children, "the engine runs in child processes"
        body = {**LONG, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            lines = (line for line in r.iter_lines() if line.startswith("data: "))
            next(lines)  # the first chunk comes once the engine has produced output
            os.kill(proc.pid, signal.SIGTERM)
            wait_until_refused(url)
            with pytest.raises(httpx.ConnectError):
                httpx.post(f"{url}/v1/chat/completions", json=LONG, timeout=5)
            rest = list(lines)
        assert rest[-1] == "data: [DONE]", "the stream was cut off"
        chunks = [json.loads(line.removeprefix("data: ")) for line in rest[:-1]]
        assert not [c for c in chunks if "error" in c]
        finished = {c["index"] for k in chunks for c in k["choices"] if c["finish_reason"]}
        assert finished == set(range(N)), "every choice finished"
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while [c for c in children if os.path.exists(f"/proc/{c}")]:
            assert time.monotonic() < deadline, "engine left behind"
            time.sleep(0.1)
        said = DRAINING.search(log.read_text(errors="replace"))
        assert said, "the server says what it drains"
        return int(said.group(1)) + int(said.group(2))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigterm_drains_in_flight_requests_then_exits(tmp_path):
    for attempt in range(TRIES):
        if drain_once(tmp_path / f"serve-{attempt}.log") > 0:
            return
    pytest.fail(f"in {TRIES} runs the signal never reached the server while it was generating")


def _cmdline(pid: int) -> str:
    try:
        return (
            open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def test_engine_death_fails_in_flight_requests_then_the_server_exits(tmp_path):
    """As `vllm serve`: a dead engine fails the requests in flight (an error event, then
    [DONE]), and the server exits non-zero so that a supervisor restarts it."""
    log = tmp_path / "serve.log"
    proc, url = _start(log, ENGINE_ARGS, {})
    try:
        cores = [c for c in engine_children(proc.pid) if "EngineCore" in _cmdline(c)]
        assert cores, [_cmdline(c) for c in engine_children(proc.pid)]
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**LONG, "stream": True},
                          timeout=120) as r:  # fmt: skip
            assert r.status_code == 200
            lines = (line for line in r.iter_lines() if line.startswith("data: "))
            next(lines)  # the engine is generating
            os.kill(cores[0], signal.SIGKILL)
            rest = list(lines)
        assert rest[-1] == "data: [DONE]", "the stream was cut off"
        chunks = [json.loads(line.removeprefix("data: ")) for line in rest[:-1]]
        finished = {c["index"] for k in chunks for c in k.get("choices", ()) if c["finish_reason"]}
        assert finished != set(range(N)), "the premise: the request was still running"
        (error,) = [c["error"] for c in chunks if "error" in c]
        assert error["type"] and error["message"], error
        assert proc.wait(timeout=30) != 0
        assert "engine died" in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
