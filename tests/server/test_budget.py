"""Budget forcing inside the engine, seen through HTTP: closed thinking and an answer."""

import pytest

from tests.conftest import MODEL

QUESTION = [{"role": "user", "content": "What is 2+3?"}]
# SmolLM2 answers after "Final Answer: " but tends to stop right after a bare colon.
INDUCER = "\nFinal Answer: "


def create(client, **extra):
    return client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=60, temperature=0,
        extra_body={"return_token_ids": True, **extra},
    )  # fmt: skip


def assert_closed_with_answer(r, tokenizer, thinking: int):
    choice = r.choices[0]
    end = tokenizer.convert_tokens_to_ids("</think>")
    ids = choice.model_extra["token_ids"]
    assert ids.count(end) == 1 and ids.index(end) == thinking  # closed exactly at the budget
    content = choice.message.content
    assert content.startswith(INDUCER) and content[len(INDUCER):].strip()  # fmt: skip
    trace = choice.model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] == thinking
    assert trace["controllers"] == ["budget"]
    (close,) = [e for e in trace["events"] if e["reason"] == "budget"]
    assert close["at"] == thinking
    assert close["forced_tokens"] == 1 + len(tokenizer.encode(INDUCER, add_special_tokens=False))
    assert trace["forced_tokens"] == sum(e["forced_tokens"] for e in trace["events"])
    assert r.usage.completion_tokens_details.reasoning_tokens == thinking


# Below the ~10 tokens this model thinks unforced; the minimum test covers longer budgets.
@pytest.mark.parametrize("budget", [0, 3, 7])
def test_maximum_closes_thinking_and_the_model_answers(client, tokenizer, budget):
    r = create(client, thinkctl={"max_thinking_tokens": budget, "answer_inducer": INDUCER})
    assert_closed_with_answer(r, tokenizer, budget)


def test_vllms_thinking_token_budget_is_an_alias(client, tokenizer):
    r = create(client, thinking_token_budget=9, thinkctl={"answer_inducer": INDUCER})
    assert_closed_with_answer(r, tokenizer, 9)


def test_minimum_injects_wait_then_the_maximum_closes(client, tokenizer):
    # Unforced, this model stops thinking (with EOS) after about ten tokens.
    natural = create(client)
    assert natural.choices[0].model_extra["thinkctl"]["thinking_tokens"] < 30
    # min == max: this model may stop (EOS) anywhere once the minimum is met.
    r = create(client, thinkctl={"min_thinking_tokens": 32, "max_thinking_tokens": 32,
                                 "answer_inducer": INDUCER})  # fmt: skip
    trace = r.choices[0].model_extra["thinkctl"]
    waits = [e for e in trace["events"] if e["reason"] == "budget_min"]
    assert waits and all(e["at"] < 32 for e in waits)
    assert "Wait" in r.choices[0].message.model_extra["reasoning"]
    assert_closed_with_answer(r, tokenizer, 32)


def test_reasoning_effort_none_answers_without_thinking(client, tokenizer):
    r = create(client, reasoning_effort="none", thinkctl={"answer_inducer": INDUCER})
    assert_closed_with_answer(r, tokenizer, 0)
    assert r.choices[0].message.model_extra["reasoning"] == ""


def test_trace_without_control_reports_a_natural_run(client):
    r = create(client)
    trace = r.choices[0].model_extra["thinkctl"]
    assert trace["controllers"] == [] and trace["forced_tokens"] == 0 and trace["events"] == []
    assert trace["exit_reason"] in ("stop", "max_tokens", "natural")


def test_streaming_reports_the_trace_on_the_last_chunk(client, tokenizer):
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=60, temperature=0, stream=True,
        extra_body={"thinkctl": {"max_thinking_tokens": 5, "answer_inducer": INDUCER}},
    )  # fmt: skip
    chunks = [c for c in stream if c.choices]
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    trace = chunks[-1].choices[0].model_extra["thinkctl"]
    assert content.startswith(INDUCER) and content[len(INDUCER):].strip()  # fmt: skip
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] == 5
