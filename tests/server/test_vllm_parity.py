"""The parity table: the same request to thinkctl (no control asked) and to plain
`vllm serve` on the testbed, field by field, gives the same token ids and logprobs.

Both servers run the same engine flags (tests/conftest.py) and the same reasoning parser,
one request at a time, greedy: vLLM's seeded sampling on CPU is not thinkctl's (engine/
cpu_seed.py makes seeds hold under chunked prefill), so sampled streams differ by design.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import MODEL, plain_vllm, problem_prompt
from thinkctl.models import embedded

pytestmark = pytest.mark.engine
FLAGS = ["--max-num-batched-tokens", "32", "--max-num-seqs", "32",
         "--kv-cache-memory-bytes", str(1 << 30), "--reasoning-parser", "deepseek_r1"]  # fmt: skip
QUESTION = [{"role": "user", "content": problem_prompt(difficulty=2)}]
NO_CONTROL = {"thinkctl": {"answer_reserve": 0}}  # thinkctl's own default would act

FIELDS = {
    "plain": {},
    "logprobs": {"logprobs": True, "top_logprobs": 3},
    "max_tokens": {"max_tokens": 30},
    "max_completion_tokens": {"max_completion_tokens": 30},
    "top_k_top_p_min_p": {"top_k": 5, "top_p": 0.9, "min_p": 0.05},
    "repetition_penalty": {"repetition_penalty": 1.5},
    "presence_frequency_penalty": {"presence_penalty": 1.0, "frequency_penalty": 0.5},
    "logit_bias": {"logit_bias": {"5": -100, "9": 5}},
    "min_tokens_ignore_eos": {"min_tokens": 250, "ignore_eos": True, "max_tokens": 260},
    "stop_token_ids": {"stop_token_ids": [9]},
    "answer_stop_string": {"stop": ["}"], "include_stop_str_in_output": True},
    "seed": {"seed": 7},
}


@pytest.fixture(scope="module")
def vllm_client(tmp_path_factory) -> Iterator[openai.OpenAI]:
    log = tmp_path_factory.mktemp("plain_vllm") / "vllm.log"
    with plain_vllm(str(embedded.ensure(MODEL)), MODEL, log, FLAGS) as client:
        yield client


def _reply(client: openai.OpenAI, fields: dict, extra: dict) -> dict:
    body = {"max_tokens": 300, "temperature": 0, **fields}
    sdk = {k: body.pop(k) for k in ("max_tokens", "max_completion_tokens", "temperature",
                                    "top_p", "seed", "stop", "logprobs", "top_logprobs",
                                    "presence_penalty", "frequency_penalty", "logit_bias")
           if k in body}  # fmt: skip
    r = client.chat.completions.create(model=MODEL, messages=QUESTION,
                                       extra_body={"return_token_ids": True, **body, **extra},
                                       **sdk)  # fmt: skip
    c = r.choices[0]
    return {
        "ids": c.model_extra["token_ids"],
        "content": c.message.content,
        "reasoning": c.message.model_extra.get("reasoning"),
        "finish": c.finish_reason,
        "logprobs": [e.model_dump() for e in c.logprobs.content] if c.logprobs else None,
    }


@pytest.mark.parametrize("name", list(FIELDS))
def test_same_tokens_and_logprobs_as_plain_vllm(client, vllm_client, name):
    ours = _reply(client, FIELDS[name], NO_CONTROL)
    theirs = _reply(vllm_client, FIELDS[name], {})
    assert ours["ids"] == theirs["ids"] and ours["finish"] == theirs["finish"]
    # The same text, but for the whitespace around </think>: thinkctl decodes each side of
    # it on its own, vLLM's parser splits the decoded text (and says null for no content).
    for part in ("content", "reasoning"):
        assert (ours[part] or "").strip() == (theirs[part] or "").strip()
    if theirs["logprobs"] is not None:
        assert len(ours["logprobs"]) == len(theirs["logprobs"]) == len(theirs["ids"])
        for a, b in zip(ours["logprobs"], theirs["logprobs"], strict=True):
            assert a["token"] == b["token"] and a["bytes"] == b["bytes"]
            assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-4)
            assert [t["token"] for t in a["top_logprobs"]] == [
                t["token"] for t in b["top_logprobs"]
            ]
    else:
        assert ours["logprobs"] is None
