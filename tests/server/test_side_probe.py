"""DEER and Dynasor through HTTP: trial answers from side requests end thinking, the trace
shows each trial, and the trials reuse vLLM's prefix cache."""

import openai
import pytest

from tests.conftest import MODEL, problem_prompt
from thinkctl.testbed.tasks import extract_answer

QUESTION = [{"role": "user", "content": problem_prompt(difficulty=2)}]


def create(client, messages=QUESTION, max_tokens=300, **thinkctl):
    return client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0,
        extra_body={"return_token_ids": True, "thinkctl": thinkctl},
    )  # fmt: skip


def trace_of(r):
    return r.choices[0].model_extra["thinkctl"]


def test_m_agreeing_trial_answers_end_thinking(client, tokenizer):
    natural = create(client)
    r = create(client, dynasor={"every": 8, "agree": 2})
    trace = trace_of(r)
    assert trace["exit_reason"] == "dynasor" and trace["controllers"] == ["dynasor"]
    trials = [e for e in trace["events"] if e["reason"] == "trial"]
    (exit_,) = [e for e in trace["events"] if e["reason"] == "dynasor"]
    at = exit_["at"]
    assert [e["at"] for e in trials] == list(range(8, at + 1, 8))  # every 8 thinking tokens
    assert trials[-1]["at"] == at and exit_["agreeing"] == 2
    assert exit_["discarded_tokens"] >= 0  # generated while the last trial ran, then dropped
    assert trials[-2]["answer"] == trials[-1]["answer"] == exit_["answer"]
    earlier = zip(trials[:-2], trials[1:-1], strict=True)  # no earlier pair agreed
    assert not any(a["answer"] == b["answer"] is not None for a, b in earlier)
    assert (
        trace["thinking_tokens"]
        == at
        < natural.choices[0].model_extra["thinkctl"]["thinking_tokens"]
    )
    assert trace["probe_tokens"] == sum(e["probe_tokens"] for e in trials) > 0
    # The reply is what stopping at the trial's prefix gives: the natural run's first `at`
    # thinking tokens (the testbed opens thinking in its prompt), the close, the answer.
    ids = r.choices[0].model_extra["token_ids"]
    assert ids[:at] == natural.choices[0].model_extra["token_ids"][:at]
    assert ids[at] == tokenizer.convert_tokens_to_ids("</think>")
    assert exit_["forced_tokens"] == len(tokenizer.encode("\\boxed{", add_special_tokens=False)) + 1
    assert str(extract_answer(r.choices[0].message.content)) == exit_["answer"]
    assert r.usage.completion_tokens_details.reasoning_tokens == at


def test_a_confident_trial_answer_ends_thinking_under_deer(client, tokenizer):
    r = create(client, deer={"threshold": 0.5})
    trace = trace_of(r)
    assert trace["exit_reason"] == "deer" and trace["controllers"] == ["deer"]
    (trial,) = [e for e in trace["events"] if e["reason"] == "trial"]  # the first cue sufficed
    (exit_,) = [e for e in trace["events"] if e["reason"] == "deer"]
    assert trial["at"] == exit_["at"] and trial["confidence"] >= 0.5
    cues = {tokenizer.convert_tokens_to_ids(w) for w in ("Wait", "Hmm", "Alternatively")}
    ids = r.choices[0].model_extra["token_ids"]
    assert ids[exit_["at"] - 1] in cues  # tried right after the model wrote a cue
    assert str(extract_answer(r.choices[0].message.content)) == exit_["answer"]


def test_an_unreachable_confidence_lets_thinking_finish(client):
    natural = trace_of(create(client))
    r = create(client, deer={"threshold": 1.0, "confidence": "min", "answer_tokens": 4})
    trace = trace_of(r)
    assert trace["exit_reason"] == "natural"
    assert trace["thinking_tokens"] == natural["thinking_tokens"]  # the held output released
    assert all(e["confidence"] < 1.0 for e in trace["events"] if e["reason"] == "trial")


def test_each_choice_probes_on_its_own(client):
    r = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=300, temperature=0.6, seed=3, n=3,
        extra_body={"thinkctl": {"dynasor": {"every": 8, "agree": 2}}},
    )  # fmt: skip
    for choice in r.choices:
        trace = choice.model_extra["thinkctl"]
        trials = [e for e in trace["events"] if e["reason"] == "trial"]
        assert trace["probe_tokens"] == sum(e["probe_tokens"] for e in trials) > 0
        if trace["exit_reason"] == "dynasor":
            assert trace["thinking_tokens"] == trials[-1]["at"]
            assert str(extract_answer(choice.message.content)) == trials[-1]["answer"]


def test_streamed_reply_equals_the_whole_one(client):
    whole = create(client, dynasor={"every": 8, "agree": 2}).choices[0]
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=300, temperature=0, stream=True,
        extra_body={"thinkctl": {"dynasor": {"every": 8, "agree": 2}}},
    )  # fmt: skip
    reasoning, content = "", ""
    for chunk in stream:
        for c in chunk.choices:
            reasoning += c.delta.model_extra.get("reasoning") or ""
            content += c.delta.content or ""
    assert reasoning == whole.message.model_extra["reasoning"]
    assert content == whole.message.content


def test_trials_reuse_the_prefix_cache(server, client):
    """A prompt over one KV block (128 tokens on CPU): every trial finds it in the cache."""
    long = [{"role": "user", "content": " ".join([problem_prompt(difficulty=2)] * 11)}]
    hits = server.metric("vllm:prefix_cache_hits_total")
    r = create(client, long, 200, dynasor={"every": 4, "agree": 50})
    prompt = r.usage.prompt_tokens
    assert prompt >= 128
    trials = [e for e in trace_of(r)["events"] if e["reason"] == "trial"]
    assert trials and all(e["cached_tokens"] >= prompt // 128 * 128 for e in trials)
    assert server.metric("vllm:prefix_cache_hits_total") - hits >= sum(
        e["cached_tokens"] for e in trials
    )


@pytest.mark.parametrize(
    ("thinkctl", "param"),
    [
        ({"dynasor": {"every": 0}}, "thinkctl.dynasor.every"),
        ({"dynasor": {"agree": 0}}, "thinkctl.dynasor.agree"),
        ({"deer": {"threshold": 0}}, "thinkctl.deer.threshold"),
        ({"deer": {"threshold": 1.5}}, "thinkctl.deer.threshold"),
        ({"deer": {}}, "thinkctl.deer.threshold"),
    ],
)
def test_bad_options_are_400s(client, thinkctl, param):
    with pytest.raises(openai.BadRequestError) as err:
        create(client, **thinkctl)
    assert err.value.body["param"] == param
    assert err.value.body["type"] == "invalid_request_error"


def test_logprobs_with_side_probes_are_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=QUESTION, logprobs=True,
            extra_body={"thinkctl": {"deer": {"threshold": 0.9}}},
        )  # fmt: skip
    assert err.value.body["param"] == "thinkctl.deer"
