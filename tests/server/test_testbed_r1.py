"""testbed-r1 served by name: R1-Distill-Qwen's template, its real multi-token answer
inducer and its BPE cue words, on a model that thinks like the testbed."""

import pytest

from tests.conftest import openai_server
from thinkctl.probes.cues import cue_token_ids_of
from thinkctl.testbed.tasks import extract_answer, held_out

MODEL = "testbed-r1"
PROBLEM = held_out("test")[1]
QUESTION = [{"role": "user", "content": PROBLEM.prompt()}]

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def r1_client(tmp_path_factory):
    log = tmp_path_factory.mktemp("testbed-r1") / "serve.log"
    with openai_server(MODEL, log, ["--kv-cache-memory-bytes", str(1 << 30)]) as client:
        yield client


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

    from thinkctl.models import embedded

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
# The R1 family's presets: their instructions, L1's length prompt, DEER's inducer.
PRESETS = ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "agentica-org/DeepScaleR-1.5B-Preview",
           "nvidia/DLER-R1-1.5B-Research", L1)  # fmt: skip


@pytest.fixture(scope="module", params=PRESETS)
def preset(request, tmp_path_factory):
    """testbed-r1's folder served with a preset, as a downloaded copy of that model would be:
    (preset id, client, tokenizer)."""
    from transformers import AutoTokenizer

    from thinkctl.models import embedded
    from thinkctl.models.schema import load

    folder = str(embedded.ensure(MODEL))
    log = tmp_path_factory.mktemp("testbed-r1-preset") / "serve.log"
    args = ["--preset", request.param, "--served-model-name", "copy",
            "--no-probe",  # a downloaded copy carries no probe
            "--kv-cache-memory-bytes", str(1 << 30)]  # fmt: skip
    with openai_server(folder, log, args) as client:
        yield load().find(request.param), client, AutoTokenizer.from_pretrained(folder)


def test_r1_family_presets_prompt_and_close_as_their_models_do(preset):
    entry, client, tok = preset

    def ask(thinkctl=None, **body):
        extra = {"return_token_ids": True, **({"thinkctl": thinkctl} if thinkctl else {})}
        r = client.chat.completions.create(model="copy", messages=QUESTION, max_tokens=900,
                                           extra_body=extra, **body)  # fmt: skip
        return r, tok.decode(r.model_extra["prompt_token_ids"]), r.choices[0]

    r, prompt, free = ask(seed=1)
    assert entry.instruction.text in prompt and prompt.endswith("<｜Assistant｜><think>\n")
    assert extract_answer(free.message.content) == PROBLEM.answer
    r, _, cut = ask({"max_thinking_tokens": 40}, seed=1)
    trace = cut.model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget" and trace["forced_tokens"] == 8
    assert cut.message.content.startswith("\n**Final Answer**\n\\boxed{")
    assert extract_answer(cut.message.content) is not None
    if entry.length_prompt is not None:  # L1: the prompt names the budget it enforces
        r, prompt, low = ask(temperature=0, reasoning_effort="low")
        trace = low.model_extra["thinkctl"]
        budget = trace["thinking_tokens"]
        assert trace["exit_reason"] == "budget"
        # One budget for every query (no per-query effort under a length prompt), raised to
        # L1's trained minimum of 100 in the prompt.
        assert prompt.endswith(f"Think for {max(budget, 100)} tokens.<｜Assistant｜><think>\n")
        assert not any(e["reason"] == "query_budget" for e in trace["events"])
        assert extract_answer(low.message.content) is not None
