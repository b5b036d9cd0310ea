"""testbed-r1 served by name: R1-Distill-Qwen's template, its real multi-token answer
inducer and its BPE cue words, on a model that thinks like the testbed."""

import pytest

from bench.server_process import start_server, stop_server
from probes.cues import cue_token_ids_of
from testbed.tasks import extract_answer, held_out
from tests.conftest import START_TIMEOUT_S

MODEL = "testbed-r1"
PROBLEM = held_out("test")[1]
QUESTION = [{"role": "user", "content": PROBLEM.prompt()}]

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def r1_client(tmp_path_factory):
    import openai

    log = tmp_path_factory.mktemp("testbed-r1") / "serve.log"
    try:
        proc, url = start_server(MODEL, log, ["--kv-cache-memory-bytes", str(1 << 30)],
                                 timeout_s=START_TIMEOUT_S)  # fmt: skip
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    finally:
        stop_server(proc)


def create(client, **extra):
    return client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=900, temperature=0,
        extra_body={"return_token_ids": True, **extra},
    )  # fmt: skip


def test_it_thinks_in_r1s_words_and_answers_in_r1s_format(r1_client):
    r = create(r1_client)
    choice = r.choices[0]
    prompt = r.model_extra["prompt_token_ids"]
    assert prompt[-2:] == [151648, 198]  # the template opened "<think>\n"
    reasoning = choice.message.model_extra["reasoning"]
    assert reasoning.startswith("Okay, let me work through the chain")
    assert (
        "\n\nWait, " in reasoning or "\n\nHmm, " in reasoning or "\n\nAlternatively, " in reasoning
    )
    assert choice.message.content.startswith("\n**Final Answer**\n\\boxed{")
    assert extract_answer(choice.message.content) == PROBLEM.answer
    trace = choice.model_extra["thinkctl"]
    assert trace["exit_reason"] == "natural"
    assert r.usage.completion_tokens_details.reasoning_tokens == trace["thinking_tokens"] > 50


def test_a_budget_closes_with_r1s_inducer_and_the_model_completes_it(r1_client):
    r = create(r1_client, thinkctl={"max_thinking_tokens": 40})
    trace = r.choices[0].model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] == 40
    # "</think>" + "\n**Final Answer**\n\\boxed": eight tokens, then the model's "{d}"
    assert trace["forced_tokens"] == 8
    assert extract_answer(r.choices[0].message.content) is not None


def test_deer_tries_at_bpe_cue_words(r1_client):
    from transformers import AutoTokenizer

    from server import embedded

    tok = AutoTokenizer.from_pretrained(embedded.ensure(MODEL))
    cues = set(cue_token_ids_of(tok))
    r = create(r1_client, thinkctl={"deer": {"threshold": 0.5}})
    trace = r.choices[0].model_extra["thinkctl"]
    ids = r.choices[0].model_extra["token_ids"]
    trials = [e for e in trace["events"] if e["reason"] == "trial"]
    assert trials and all(ids[e["at"] - 1] in cues for e in trials)
    assert trace["exit_reason"] == "deer"
    assert str(extract_answer(r.choices[0].message.content)) == trials[-1]["answer"]


L1 = "l3lab/L1-Qwen-1.5B-Exact"


@pytest.fixture(scope="module")
def l1_client(tmp_path_factory):
    """testbed-r1's folder served with L1's preset: its instruction, its length prompt and
    the R1 presets' inducer, as a downloaded L1 would be."""
    import openai

    from server import embedded

    log = tmp_path_factory.mktemp("testbed-r1-l1") / "serve.log"
    args = ["--preset", L1, "--served-model-name", "l1", "--kv-cache-memory-bytes", str(1 << 30)]
    try:
        proc, url = start_server(str(embedded.ensure(MODEL)), log, args, timeout_s=START_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    finally:
        stop_server(proc)


def test_l1s_preset_prompts_for_the_budget_it_enforces(l1_client):
    from transformers import AutoTokenizer

    from server import embedded

    tok = AutoTokenizer.from_pretrained(embedded.ensure(MODEL))
    r = l1_client.chat.completions.create(
        model="l1", messages=QUESTION, max_tokens=900, temperature=0, reasoning_effort="low",
        extra_body={"return_token_ids": True},
    )  # fmt: skip
    prompt = tok.decode(r.model_extra["prompt_token_ids"])
    trace = r.choices[0].model_extra["thinkctl"]
    budget = trace["thinking_tokens"]
    assert trace["exit_reason"] == "budget"
    assert "Let's think step by step and output the final answer within \\boxed{}." in prompt
    # The budget enforced is the one the prompt names (one for every query: no per-query
    # effort under a length prompt), raised to L1's trained minimum of 100 in the prompt.
    assert prompt.endswith(f"Think for {max(budget, 100)} tokens.<｜Assistant｜><think>\n")
    assert not any(e["reason"] == "query_budget" for e in trace["events"])
    assert r.choices[0].message.content.startswith("\n**Final Answer**\n\\boxed{")
    assert extract_answer(r.choices[0].message.content) is not None
    free = l1_client.chat.completions.create(model="l1", messages=QUESTION, max_tokens=900,
                                             temperature=0)  # fmt: skip
    assert extract_answer(free.choices[0].message.content) == PROBLEM.answer
