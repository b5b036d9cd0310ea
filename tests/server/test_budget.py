"""Budget forcing inside the engine, seen through HTTP: closed thinking and an answer."""

import pytest

from tests.conftest import MODEL, problem_prompt
from thinkctl.testbed.tasks import extract_answer

QUESTION = [{"role": "user", "content": problem_prompt(difficulty=1)}]
INDUCER = "\\boxed{"  # the testbed's answer inducer, from testbed/model/thinkctl.json


def create(client, **extra):
    return client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=300, temperature=0,
        extra_body={"return_token_ids": True, **extra},
    )  # fmt: skip


def assert_closed_with_answer(r, tokenizer, thinking: int):
    choice = r.choices[0]
    end = tokenizer.convert_tokens_to_ids("</think>")
    ids = choice.model_extra["token_ids"]
    assert ids.count(end) == 1 and ids.index(end) == thinking  # closed exactly at the budget
    content = choice.message.content
    assert content.lstrip().startswith(INDUCER) and extract_answer(content) is not None
    trace = choice.model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] == thinking
    assert trace["controllers"] == ["budget"]
    (close,) = [e for e in trace["events"] if e["reason"] == "budget"]
    assert close["at"] == thinking
    assert close["forced_tokens"] == 1 + len(tokenizer.encode(INDUCER, add_special_tokens=False))
    assert trace["forced_tokens"] == sum(e["forced_tokens"] for e in trace["events"])
    assert r.usage.completion_tokens_details.reasoning_tokens == thinking


@pytest.mark.parametrize("budget", [0, 7, 30])  # all below this problem's natural length
def test_maximum_closes_thinking_and_the_model_answers(client, tokenizer, budget):
    natural = create(client).choices[0].model_extra["thinkctl"]["thinking_tokens"]
    assert natural > budget
    r = create(client, thinkctl={"max_thinking_tokens": budget})
    assert_closed_with_answer(r, tokenizer, budget)


def test_vllms_thinking_token_budget_is_an_alias(client, tokenizer):
    r = create(client, thinking_token_budget=9)
    assert_closed_with_answer(r, tokenizer, 9)


def test_minimum_injects_wait_then_the_maximum_closes(client, tokenizer):
    natural = create(client).choices[0].model_extra["thinkctl"]["thinking_tokens"]
    floor = natural + 60
    # min == max: the model may close on its own anywhere once the minimum is met.
    r = create(client, thinkctl={"min_thinking_tokens": floor, "max_thinking_tokens": floor})
    trace = r.choices[0].model_extra["thinkctl"]
    waits = [e for e in trace["events"] if e["reason"] == "budget_min"]
    assert waits and waits[0]["at"] == natural  # where the model wanted to stop
    assert all(e["at"] < floor for e in waits)
    reasoning = r.choices[0].message.model_extra["reasoning"]
    assert reasoning.count("Wait") >= len(waits)
    assert_closed_with_answer(r, tokenizer, floor)


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_every_openai_reasoning_effort_is_accepted_and_caps_thinking(client, effort):
    level = client.models.list().data[0].model_extra["thinkctl"]["effort"]["levels"][effort]
    budget = level["max_thinking_tokens"]
    if "per_query" in level:  # each query's budget is one of its point's
        budget = max(level["per_query"]["budgets"])
    r = create(client, reasoning_effort=effort)
    trace = r.choices[0].model_extra["thinkctl"]
    assert budget is None or trace["thinking_tokens"] <= budget
    assert trace["controllers"] == ([] if budget is None else ["budget"])


def test_reasoning_effort_none_answers_without_thinking(client, tokenizer):
    r = create(client, reasoning_effort="none")
    assert_closed_with_answer(r, tokenizer, 0)
    assert r.choices[0].message.model_extra["reasoning"] == ""


def test_trace_without_control_reports_a_natural_run(client):
    r = create(client)
    trace = r.choices[0].model_extra["thinkctl"]
    assert trace["controllers"] == [] and trace["forced_tokens"] == 0 and trace["events"] == []
    assert trace["exit_reason"] == "natural"
    assert extract_answer(r.choices[0].message.content) is not None


def test_streaming_reports_the_trace_on_the_last_chunk(client, tokenizer):
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=60, temperature=0, stream=True,
        extra_body={"thinkctl": {"max_thinking_tokens": 5}},
    )  # fmt: skip
    chunks = [c for c in stream if c.choices]
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    trace = chunks[-1].choices[0].model_extra["thinkctl"]
    assert content.lstrip().startswith(INDUCER) and extract_answer(content) is not None
    assert trace["exit_reason"] == "budget" and trace["thinking_tokens"] == 5


def test_mode_prefix_skips_thinking(client):
    r = create(client, thinkctl={"mode_prefix": "</think>"})
    trace = r.choices[0].model_extra["thinkctl"]
    assert trace["exit_reason"] == "mode" and trace["thinking_tokens"] == 0
    assert trace["controllers"] == ["mode"] and trace["forced_tokens"] == 1
    assert extract_answer(r.choices[0].message.content) is not None
