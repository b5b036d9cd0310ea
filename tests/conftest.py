"""One real thinkctl server (real vLLM engine on CPU, real HTTP on 127.0.0.1) per session.

The engine takes ~30 s to start on 2 cores, so every server test shares it. It serves the
testbed reasoning model (testbed/model): it thinks in chain-arithmetic traces, re-checks
after cue words, closes thinking itself and answers `\\boxed{ d }`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from thinkctl.bench.server_process import start_server, start_vllm, stop_server

API_KEY = "test-key"
ENV_API_KEY = "env-key"
FILE_API_KEYS = ("file-key-one", "file-key-two")  # deepseek_server's --api-key-file
MODEL = "testbed"
START_TIMEOUT_S = 600


@dataclass(frozen=True)
class Server:
    base_url: str  # http://127.0.0.1:PORT
    log: Path

    def metric(self, name: str, default: float | None = None) -> float:
        """Sum of a Prometheus metric's samples, e.g. vllm:num_requests_running; `default`
        for a labelled series not yet exported (else that is a failure)."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        ]
        if not values and default is not None:
            return default
        assert values, f"metric {name} not exported"
        return sum(values)


def _start(
    log: Path, extra_args: list[str], env: dict[str, str], eager: bool = True, probe: bool = False
) -> tuple[subprocess.Popen, str]:
    args = [
        # A small step budget puts every prompt (30-40 tokens) through chunked prefill,
        # the condition of the CPU seed hazard (tests/server/test_seed.py).
        "--max-num-batched-tokens", "32",
        "--max-num-seqs", "32",
        "--kv-cache-memory-bytes", str(1 << 30),
        # The shared servers are the probe-less server; `probe` serves the one the testbed's
        # calibration folder holds, found as serve finds it.
        *([] if probe else ["--no-probe"]),
        *extra_args,
    ]  # fmt: skip
    try:
        proc, url = start_server(MODEL, log, args, env, timeout_s=START_TIMEOUT_S, eager=eager)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    # Warm up: the first request pays the engine's lazy start-up, and a client that leaves
    # during it has been seen to go unnoticed (see the closing note on issue 8).
    key = env.get("THINKCTL_API_KEY") or API_KEY
    body = {"model": MODEL, "messages": [{"role": "user", "content": "compute 1 ; A + 1"}],
            "max_tokens": 4}  # fmt: skip
    httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120,
               headers={"Authorization": f"Bearer {key}"}).raise_for_status()  # fmt: skip
    return proc, url


@contextmanager
def running_server(
    factory: pytest.TempPathFactory,
    name: str,
    extra_args: list[str],
    env: dict[str, str],
    eager: bool = True,
    probe: bool = False,
) -> Iterator[Server]:
    """A server of its own for a fixture, its log in a fresh temporary folder `name`;
    `eager` (--enforce-eager) skips vLLM's compilation, which adds ~30 s to a start;
    `probe` serves the testbed's probe, else --no-probe."""
    log = factory.mktemp(name) / "serve.log"
    proc, url = _start(log, extra_args, env, eager, probe)
    try:
        yield Server(url, log)
    finally:
        stop_server(proc)


@contextmanager
def _client(start: Callable[[], tuple[subprocess.Popen, str]]) -> Iterator[openai.OpenAI]:
    """A server `start()` launches, as an `openai` client (no API key), stopped at the end."""
    try:
        proc, url = start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    finally:
        stop_server(proc)


def openai_server(model: str, log: Path, args: list[str]):
    """`thinkctl serve --model MODEL ARGS` of its own, as an `openai` client (no API key)."""
    return _client(lambda: start_server(model, log, args, timeout_s=START_TIMEOUT_S))


def plain_vllm(
    model_dir: str, name: str, log: Path, args: list[str], env: dict[str, str] | None = None
):
    """Plain `vllm serve` (bench/server_process.py), for parity tests: an `openai` client."""
    return _client(lambda: start_vllm(model_dir, name, log, args, env, timeout_s=START_TIMEOUT_S))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory, "server", ["--api-key", API_KEY], {}) as s:
        yield s


@pytest.fixture(scope="session")
def deepseek_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second server: DeepSeek's `reasoning_content` field, API keys from the environment
    and a file, and uvicorn's most verbose log (tests/server/test_auth.py reads it)."""
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("# one key per line\n" + "\n".join(FILE_API_KEYS) + "\n")
    args = ["--reasoning-field", "reasoning_content", "--api-key-file", str(keys),
            "--uvicorn-log-level", "trace"]  # fmt: skip
    with running_server(tmp_path_factory, "deepseek", args, {"THINKCTL_API_KEY": ENV_API_KEY}) as s:
        yield s


@pytest.fixture(scope="session")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0,
                         timeout=120)  # fmt: skip


@pytest.fixture(scope="session")
def aclient(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0,
                              timeout=300)  # fmt: skip


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from thinkctl.models import embedded

    return AutoTokenizer.from_pretrained(embedded.ensure(MODEL))


def problem_prompt(difficulty: int = 1, index: int = 0) -> str:
    """A held-out testbed problem of the given difficulty."""
    from thinkctl.testbed import tasks

    problems = [p for p in tasks.held_out("test") if p.difficulty == difficulty]
    return problems[index].prompt()
