"""Chat completions through the official openai client, against the real server."""

import httpx

from tests.conftest import MODEL, problem_prompt

QUESTION = [{"role": "user", "content": problem_prompt(difficulty=2)}]


def count_reasoning(tokenizer, prompt_ids: list[int], output_ids: list[int]) -> int:
    """Thinking tokens, counted independently of the server's own tracker."""
    start, end = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert start in prompt_ids  # the template opened thinking
    return output_ids.index(end) if end in output_ids else len(output_ids)


def test_models_lists_the_served_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    extra = models[0].model_extra
    assert extra["max_model_len"] == 512  # the testbed's own context
    assert extra["thinkctl"]["thinks"] is True
    effort = extra["thinkctl"]["effort"]
    assert effort["calibrated"] and effort["levels"]["none"]["max_thinking_tokens"] == 0


def test_health_needs_no_key_and_metrics_are_prometheus(server):
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert server.metric("vllm:num_requests_running") >= 0
    assert "thinkctl_requests_total" in httpx.get(f"{server.base_url}/metrics").text


def test_metrics_count_each_choice_its_exit_tokens_and_waits(server, client):
    """Per choice: the exit with the controllers that were on, thinking and answer token
    histograms, and the waits for the first token and the first answer text."""
    names = ["thinkctl_choice_thinking_tokens_count", "thinkctl_choice_thinking_tokens_sum",
             "thinkctl_choice_answer_tokens_count", "thinkctl_time_to_first_token_seconds_count",
             "thinkctl_time_to_first_answer_token_seconds_count"]  # fmt: skip
    exits = 'thinkctl_exits_total{controllers="budget",reason="budget"}'  # labels sorted
    before = {name: server.metric(name) for name in names} | {exits: server.metric(exits, 0.0)}
    r = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=40, temperature=0.6, n=2,
        extra_body={"thinkctl": {"max_thinking_tokens": 10}},
    )  # fmt: skip
    traces = [c.model_extra["thinkctl"] for c in r.choices]
    assert [(t["exit_reason"], t["controllers"]) for t in traces] == [("budget", ["budget"])] * 2
    after = {name: server.metric(name, 0.0) for name in before}
    gained = {name: after[name] - before[name] for name in before}
    assert gained[exits] == 2
    thinking = sum(t["thinking_tokens"] for t in traces)
    assert gained["thinkctl_choice_thinking_tokens_sum"] == thinking
    for name in names:
        if name.endswith("_count"):
            assert gained[name] == 2, name


def test_non_streaming_splits_reasoning_and_usage_matches_token_ids(client, tokenizer):
    r = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=40, temperature=0,
        extra_body={"return_token_ids": True, "thinkctl": {"max_thinking_tokens": 10}},
    )  # fmt: skip
    choice = r.choices[0]
    out_ids, prompt_ids = choice.model_extra["token_ids"], r.model_extra["prompt_token_ids"]
    assert r.usage.completion_tokens == len(out_ids)
    assert r.usage.prompt_tokens == len(prompt_ids)
    assert r.usage.total_tokens == len(out_ids) + len(prompt_ids)
    reasoning_tokens = count_reasoning(tokenizer, prompt_ids, out_ids)
    assert r.usage.completion_tokens_details.reasoning_tokens == reasoning_tokens == 10
    reasoning = choice.message.model_extra["reasoning"]
    # The engine decodes in context, so a word-level tokenizer puts a space before the first word.
    decoded = tokenizer.decode(out_ids[:reasoning_tokens], skip_special_tokens=True)
    assert reasoning.strip() == decoded.strip()
    assert "</think>" not in reasoning + choice.message.content
    assert choice.finish_reason in ("stop", "length")


def test_streaming_gives_the_same_text_and_a_final_usage_chunk(client):
    kwargs = dict(model=MODEL, messages=QUESTION, max_tokens=40, temperature=0,
                  extra_body={"thinkctl": {"max_thinking_tokens": 12}})  # fmt: skip
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    reasoning = "".join(
        c.choices[0].delta.model_extra.get("reasoning") or "" for c in chunks if c.choices
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert reasoning == whole.choices[0].message.model_extra["reasoning"]
    assert content == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert finals[0].choices[0].model_extra["thinkctl"] == whole.choices[0].model_extra["thinkctl"]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_streamed_token_ids_match_and_the_first_chunk_has_the_prompt_ids(client):
    """As vLLM streams them: prompt ids on the first (role) chunk, output ids per delta."""
    kwargs = dict(model=MODEL, messages=QUESTION, max_tokens=40, temperature=0,
                  extra_body={"return_token_ids": True})  # fmt: skip
    whole = client.chat.completions.create(**kwargs)
    chunks = [c for c in client.chat.completions.create(**kwargs, stream=True) if c.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["prompt_token_ids"] == whole.model_extra["prompt_token_ids"]
    streamed = [i for c in chunks for i in c.choices[0].model_extra.get("token_ids") or []]
    assert streamed == whole.choices[0].model_extra["token_ids"]


def test_n_choices_with_seed_are_indexed_and_reproducible(client):
    kwargs = dict(model=MODEL, messages=QUESTION, max_tokens=16, temperature=1.0, n=2, seed=7,
                  extra_body={"return_token_ids": True})  # fmt: skip
    a = client.chat.completions.create(**kwargs)
    b = client.chat.completions.create(**kwargs)
    assert [c.index for c in a.choices] == [0, 1]
    ids = [c.model_extra["token_ids"] for c in a.choices]
    assert ids == [c.model_extra["token_ids"] for c in b.choices]
    assert a.usage.completion_tokens == sum(map(len, ids))


def test_stop_strings_and_earlier_reasoning_in_messages_are_accepted(client):
    history = [
        {"role": "user", "content": "compute 1 ; A + 1"},
        {"role": "assistant", "content": "\\boxed{ 2 }", "reasoning_content": "A : 1 + 1 = 2 ."},
        {"role": "assistant", "content": "\\boxed{ 2 }", "reasoning": "A : 1 + 1 = 2 ."},
        {"role": "user", "content": [{"type": "text", "text": problem_prompt()}]},
    ]
    r = client.chat.completions.create(
        model=MODEL, messages=history, max_tokens=100, temperature=0, stop=["answer", " }"],
    )  # fmt: skip
    message = r.choices[0].message
    # "answer" in the reasoning ("so answer 9") does not stop it; " }" in the answer does.
    assert "answer" in message.model_extra["reasoning"]
    assert r.choices[0].finish_reason == "stop" and "\\boxed{" in message.content
    assert not message.content.endswith("}")
