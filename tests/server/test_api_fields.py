"""vLLM's and OpenAI's request fields through the real server (testbed): logprobs, sampling
fields, the answer reserve, stop strings in the answer only, include_reasoning; each
checked streaming and not, with the same result."""

from __future__ import annotations

import pytest

from tests.conftest import MODEL, problem_prompt

pytestmark = pytest.mark.engine
HARD = [{"role": "user", "content": problem_prompt(difficulty=5)}]  # thinks ~150 tokens
EASY = [{"role": "user", "content": problem_prompt(difficulty=1)}]


def ask(client, stream: bool, messages=EASY, **body) -> dict:
    """One choice as a plain dict, the same whether streamed or not."""
    extra = {"return_token_ids": True, **body.pop("extra_body", {})}
    body.setdefault("max_tokens", 300)
    body.setdefault("temperature", 0)
    r = client.chat.completions.create(model=MODEL, messages=messages, stream=stream,
                                       extra_body=extra, **body)  # fmt: skip
    if not stream:
        c = r.choices[0]
        m = c.message
        lp = [e.model_dump() for e in c.logprobs.content] if c.logprobs else None
        return {"content": m.content, "reasoning": m.model_extra.get("reasoning"),
                "ids": c.model_extra["token_ids"], "finish": c.finish_reason, "logprobs": lp,
                "trace": c.model_extra["thinkctl"]}  # fmt: skip
    out: dict = {"content": "", "reasoning": None, "ids": [], "logprobs": None}
    for chunk in r:
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        out["content"] += c.delta.content or ""
        if "reasoning" in (c.delta.model_extra or {}):
            out["reasoning"] = (out["reasoning"] or "") + c.delta.model_extra["reasoning"]
        out["ids"] += c.model_extra.get("token_ids") or []
        if c.logprobs is not None:
            out["logprobs"] = (out["logprobs"] or []) + [e.model_dump() for e in c.logprobs.content]
        if c.finish_reason is not None:
            out["finish"], out["trace"] = c.finish_reason, c.model_extra["thinkctl"]
    return out


def both(client, **body) -> dict:
    """The non-streamed reply, checked equal to the streamed one."""
    plain, streamed = ask(client, False, **body), ask(client, True, **body)
    if streamed["reasoning"] is None and plain["reasoning"] == "":
        streamed["reasoning"] = ""  # an empty reasoning sends no delta
    assert streamed == plain
    return plain


def test_logprobs_cover_every_completion_token_thinking_included(client, tokenizer):
    r = both(client, logprobs=True, top_logprobs=2, max_tokens=120)
    assert r["reasoning"] and len(r["logprobs"]) == len(r["ids"])
    for entry, tok in zip(r["logprobs"], r["ids"], strict=True):
        assert entry["token"] == tokenizer.decode([tok]) and entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 2
        tops = [t["logprob"] for t in entry["top_logprobs"]]
        assert tops == sorted(tops, reverse=True)
    greedy = [e for e in r["logprobs"] if e["token"] == e["top_logprobs"][0]["token"]]
    assert len(greedy) >= len(r["logprobs"]) - 2  # temperature 0 picks the top token (forced
    # tokens aside: the answer inducer)


def test_logprobs_off_by_default(client):
    assert both(client, max_tokens=40)["logprobs"] is None


def test_min_p_of_one_is_greedy_whatever_the_seed(client):
    outs = {tuple(ask(client, False, temperature=1.0, seed=s, max_tokens=60,
                      extra_body={"min_p": 1.0})["ids"]) for s in range(3)}  # fmt: skip
    assert len(outs) == 1


def test_repetition_penalty_changes_the_greedy_output(client):
    plain = ask(client, False, max_tokens=60)["ids"]
    penalised = ask(client, False, max_tokens=60, extra_body={"repetition_penalty": 1.8})["ids"]
    assert plain != penalised


def test_max_completion_tokens_leaves_room_for_an_answer(client, tokenizer):
    natural = ask(client, False, messages=HARD)
    assert natural["trace"]["thinking_tokens"] > 50  # the premise: thinking outgrows 50
    r = both(client, messages=HARD, max_completion_tokens=50)
    end = tokenizer.convert_tokens_to_ids("</think>")
    assert end in r["ids"] and r["content"].strip()
    assert r["trace"]["exit_reason"] == "answer_reserve"
    assert r["trace"]["controllers"] == ["answer_reserve"]
    # The trace says which size applied: the server's (a quarter of 50 at most), and whose.
    most = client.models.list().data[0].model_extra["thinkctl"]["answer_reserve"]
    assert r["trace"]["answer_reserve"] == {"tokens": min(most["tokens"], 50 // 4),
                                            "source": most["source"]}  # fmt: skip
    # Opting out gives vLLM's behaviour back: thinking eats every token.
    out = both(client, messages=HARD, max_completion_tokens=50,
               extra_body={"thinkctl": {"answer_reserve": 0}})  # fmt: skip
    assert out["content"] == "" and out["trace"]["exit_reason"] == "max_tokens"
    assert out["trace"]["controllers"] == []


def test_a_larger_reserve_closes_thinking_earlier(client):
    body = {"messages": HARD, "max_tokens": 120}
    small = ask(client, False, **body, extra_body={"thinkctl": {"answer_reserve": 10}})
    large = ask(client, False, **body, extra_body={"thinkctl": {"answer_reserve": 40}})
    assert large["trace"]["thinking_tokens"] < small["trace"]["thinking_tokens"]
    assert large["trace"]["answer_reserve"] == {"tokens": 40, "source": "request"}


def test_the_reserve_leaves_a_run_that_fits_alone(client):
    r = both(client, max_tokens=300)
    assert r["trace"]["exit_reason"] == "natural" and r["trace"]["forced_tokens"] == 0


def test_a_stop_string_in_the_reasoning_does_not_end_the_reply(client):
    natural = ask(client, False)
    word = "Wait" if "Wait" in natural["reasoning"] else natural["reasoning"].split()[2]
    assert word in natural["reasoning"] and word not in natural["content"]  # the premise
    r = both(client, stop=[word])
    assert r["content"] == natural["content"] and r["finish"] == "stop"


@pytest.mark.parametrize("include", [False, True])
def test_a_stop_string_in_the_answer_ends_it(client, include):
    natural = ask(client, False)
    assert "}" in natural["content"]
    r = both(client, stop=["}", "never"], extra_body={"include_stop_str_in_output": include})
    cut = natural["content"].index("}")
    assert r["content"] == natural["content"][: cut + include] and r["finish"] == "stop"
    assert len(r["ids"]) < len(natural["ids"])  # the engine request was stopped there


def test_include_reasoning_false_leaves_the_reasoning_out(client):
    natural = ask(client, False)
    r = both(client, extra_body={"include_reasoning": False})
    assert r["reasoning"] is None and r["content"] == natural["content"]


@pytest.mark.parametrize(
    "fields",
    [{"top_k": 1}, {"min_p": 0.2}, {"repetition_penalty": 1.3}, {"logit_bias": {"5": -100}},
     {"min_tokens": 80}, {"skip_special_tokens": False}],
)  # fmt: skip
def test_sampling_fields_stream_what_they_answer(client, fields):
    """Seeded sampling: the same tokens and text streamed or not, for each sampling field."""
    both(client, temperature=0.8, seed=3, max_tokens=100, extra_body=fields)
