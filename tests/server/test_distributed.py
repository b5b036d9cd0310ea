"""vLLM's distributed engine under thinkctl: tensor and data parallelism on the CPU.

Every tensor-parallel rank runs the logits processor on the same logits; only the first
reports its decisions, so a request's trace, its forced-token count and the exit metrics
count each event once. Data-parallel engines serve different requests. On this CPU,
tensor parallelism needs `VLLM_CPU_OMP_THREADS_BIND="0|1"` (one core per rank), as the
README tells users; data parallelism starts as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import Server, problem_prompt
from thinkctl.bench.server_process import start_server, stop_server

pytestmark = pytest.mark.engine

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
PROBE = TESTBED / "probe"
LAYOUTS = {
    "tp2": (["--tensor-parallel-size", "2", "--probe", str(PROBE)],
            {"VLLM_CPU_OMP_THREADS_BIND": "0|1"}),
    "dp2": (["--data-parallel-size", "2", "--no-probe"], {}),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(LAYOUTS))
def layout(request, tmp_path_factory) -> Iterator[tuple[str, Server, openai.OpenAI]]:
    args, env = LAYOUTS[request.param]
    log = tmp_path_factory.mktemp(request.param) / "serve.log"
    args = [*args, "--kv-cache-memory-bytes", str(256 << 20), "--max-num-seqs", "8"]
    try:
        proc, url = start_server("testbed", log, args, env, timeout_s=600)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    try:
        yield request.param, Server(url, log), client
    finally:
        stop_server(proc)


def _ask(client: openai.OpenAI, thinkctl: dict, index: int = 0):
    return client.chat.completions.create(
        model="testbed", messages=[{"role": "user", "content": problem_prompt(3, index)}],
        max_tokens=60, temperature=0.0,
        extra_body={"thinkctl": thinkctl, "return_token_ids": True},
    )  # fmt: skip


def test_a_budgeted_request_has_one_event_and_one_exit(layout, tokenizer):
    _, server, client = layout
    close = [tokenizer.convert_tokens_to_ids("</think>"),
             *tokenizer.encode("\\boxed{", add_special_tokens=False)]  # fmt: skip
    for i in range(3):  # DP: requests reach both engines
        before = server.metric("thinkctl_exits_total", default=0.0)
        choice = _ask(client, {"max_thinking_tokens": 5}, i).choices[0]
        trace = choice.model_extra["thinkctl"]
        assert trace["exit_reason"] == "budget"
        (event,) = trace["events"]
        assert trace["forced_tokens"] == event["forced_tokens"] == len(close)
        at = event["at"]
        assert choice.model_extra["token_ids"][at : at + len(close)] == close
        assert server.metric("thinkctl_exits_total") == before + 1


def test_lynx_scores_each_cue_once_under_tensor_parallelism(layout):
    name, _, client = layout
    if name != "tp2":
        pytest.skip("the probe is served on the tensor-parallel layout")
    trace = _ask(client, {"lynx": {"delta": 0.3}}).choices[0].model_extra["thinkctl"]
    cues = [e["cue_index"] for e in trace["events"] if e["controller"] == "lynx"]
    assert cues, trace  # the hooks captured on the ranks and the probe scored
    assert cues == sorted(set(cues))  # one decision per cue, not one per rank
