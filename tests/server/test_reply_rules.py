"""The answer's rules without an engine: stop strings over streamed text, logprobs in
OpenAI's shape, tool calls from the answer, and the plan's answer reserve and grammars."""

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer

from thinkctl.errors import InvalidRequest
from thinkctl.probes.model_folder import Conventions, ThinkTokens
from thinkctl.server.config import ANSWER_RESERVE, ServerConfig
from thinkctl.server.limits import Limits
from thinkctl.server.logprobs import chat_logprobs
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import Reply, plan
from thinkctl.server.protocol import ChatCompletionRequest
from thinkctl.server.stop_strings import StopStrings
from thinkctl.server.tool_calls import finish_reason, tool_calls

TESTBED = Path(__file__).resolve().parents[2] / "testbed" / "model"
TEXT = st.text(alphabet="ab}", max_size=30)


def _whole(text: str, stops: list[str], include: bool) -> tuple[str, str | None]:
    """vLLM's rule on the whole text: the first stop string of the list that occurs."""
    for stop in stops:
        at = text.find(stop)
        if at >= 0:
            return text[: at + len(stop)] if include else text[:at], stop
    return text, None


@given(pieces=st.lists(TEXT, max_size=8), stop=TEXT.filter(bool), include=st.booleans())
def test_streamed_text_is_cut_where_the_whole_text_would_be(pieces, stop, include):
    s = StopStrings([stop], include)
    out = "".join(s.feed(p) for p in pieces) + s.feed("", final=True)
    assert (out, s.matched) == _whole("".join(pieces), [stop], include)


@given(text=TEXT, stops=st.lists(TEXT.filter(bool), min_size=1, max_size=3),
       include=st.booleans())  # fmt: skip
def test_the_first_listed_stop_string_wins_as_in_vllm(text, stops, include):
    s = StopStrings(stops, include)
    out = s.feed(text) + s.feed("", final=True)
    assert (out, s.matched) == _whole(text, stops, include)


def test_text_that_may_start_a_stop_string_is_held_back():
    s = StopStrings(["STOP"])
    assert s.feed("abc ST") == "abc " and s.feed("OP and more") == "" and s.matched == "STOP"
    s = StopStrings(["STOP"])
    assert s.feed("abc ST") == "abc " and s.feed("ay") == "STay"


class _Tok:
    def decode(self, ids):
        return f"<{ids[0]}>"


def test_logprobs_take_vllms_order_and_clamp():
    steps = [[(5, -0.1, "a"), (7, -2.0, "b"), (9, float("-inf"), None)]]
    (entry,) = chat_logprobs([5], steps, 3, _Tok())
    assert entry["token"] == "a" and entry["logprob"] == -0.1 and entry["bytes"] == [97]
    assert [t["token"] for t in entry["top_logprobs"]] == ["a", "b", "<9>"]
    assert entry["top_logprobs"][2]["logprob"] == -9999.0
    (entry,) = chat_logprobs([5], steps, 0, _Tok(), as_ids=True)
    assert entry["token"] == "token_id:5" and entry["top_logprobs"] == []


def test_forced_tool_calls_read_the_grammars_json():
    named = Reply(tools="named", tool_name="f")
    content, (call,) = tool_calls(named, '{"x": 1}', None)
    assert content == "" and call["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert (
        call["id"].startswith("chatcmpl-tool-") and finish_reason(named, "stop", [call]) == "stop"
    )
    required = Reply(tools="required", parallel_tool_calls=False)
    text = '[{"name": "f", "parameters": {"x": 1}}, {"name": "g", "parameters": {}}]'
    content, calls = tool_calls(required, text, None)
    assert [c["function"]["name"] for c in calls] == ["f"]  # parallel_tool_calls false
    assert finish_reason(required, "stop", calls) == "tool_calls"
    assert tool_calls(required, '[{"name": "f", "param', None) == ('[{"name": "f", "param', [])


@pytest.fixture(scope="module")
def served():
    tok = AutoTokenizer.from_pretrained(TESTBED)
    conv = Conventions(answer_inducer="\\boxed{")
    return ServerConfig(model_name="t", conventions=conv), ModelInfo(
        "t", ThinkTokens.of(conv, tok), 512
    )


def _plan(served, **body):
    config, info = served
    req = ChatCompletionRequest(model="t", messages=[{"role": "user", "content": "1"}], **body)
    return plan(req, info, config)


def test_the_reserve_applies_only_where_a_length_is_set(served):
    assert _plan(served).spec is None
    spec = _plan(served, max_tokens=400).spec
    close = len(spec.budget.close)
    assert spec.budget.reason == "answer_reserve"
    # Less the reserve (a quarter, at most --answer-reserve) and the close sequence (the
    # testbed's prompt opens thinking).
    assert spec.budget.max == 400 - min(ANSWER_RESERVE, 100) - close
    assert _plan(served, max_tokens=40).spec.budget.max == 40 - 10 - close  # a quarter
    # A forced prefix that opens thinking takes its room too.
    spec = _plan(served, max_tokens=40, thinkctl={"mode_prefix": "</think> <think>"}).spec
    assert spec.budget.max == 40 - 10 - close - len(spec.mode)
    assert _plan(served, max_tokens=40, thinkctl={"answer_reserve": 0}).spec is None
    # A smaller explicit budget is the request's own.
    spec = _plan(served, max_tokens=400, thinkctl={"max_thinking_tokens": 30}).spec
    assert (spec.budget.max, spec.budget.reason, spec.controller_names()) == (30, "budget",
                                                                              ["budget"])  # fmt: skip


def test_a_grammar_closes_without_the_inducer(served):
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    p = _plan(served, response_format=fmt, thinkctl={"max_thinking_tokens": 5})
    assert p.sampling["structured_outputs"] == {"json": {"type": "object"}}
    assert len(p.spec.budget.close) == 1
    with pytest.raises(InvalidRequest) as err:
        _plan(
            served, response_format=fmt, thinkctl={"answer_inducer": "A:", "max_thinking_tokens": 5}
        )
    assert err.value.param == "thinkctl.answer_inducer"


def test_a_grammar_needs_to_know_where_thinking_ends(served):
    config, info = served
    from dataclasses import replace

    with pytest.raises(InvalidRequest) as err:
        _plan((replace(config, grammar_after_thinking=False), info),
              response_format={"type": "json_object"})  # fmt: skip
    assert err.value.param == "response_format"


@pytest.mark.parametrize("source", ["preset", "generation_config", "server_cap", "flag"])
def test_every_source_of_max_tokens_gets_the_reserve(served, source):
    config, info = served
    if source == "preset":
        config = dataclasses.replace(config, default_max_tokens=400)
    elif source == "generation_config":
        info = dataclasses.replace(info, sampling_defaults={"max_tokens": 400})
    elif source == "server_cap":
        config = dataclasses.replace(config, limits=Limits(max_completion_tokens=400))
    else:
        config = dataclasses.replace(config, answer_reserve=30)
    body = {"max_tokens": 400} if source == "flag" else {}
    req = ChatCompletionRequest(model="t", messages=[{"role": "user", "content": "1"}], **body)
    budget = plan(req, info, config).spec.budget
    reserve = 30 if source == "flag" else 100  # a quarter of 400, at most --answer-reserve
    assert budget.reason == "answer_reserve"
    assert budget.max == 400 - reserve - len(budget.close)


@pytest.mark.parametrize(("flag", "calibrated", "asked", "size"), [
    (None, None, None, (min(ANSWER_RESERVE, 100), "default")),  # a quarter of 400 at most
    (None, 12, None, (12, "calibration")),
    (30, 12, None, (30, "flag")),  # the flag overrides the calibration
    (30, 12, 7, (7, "request")),  # the request overrides both
    (None, 200, None, (100, "calibration")),  # still at most a quarter of max_tokens
])  # fmt: skip
def test_the_reserve_is_sized_by_the_request_the_flag_the_calibration_then_the_default(
    served, flag, calibrated, asked, size
):
    config, info = served
    effort = dataclasses.replace(config.effort, answer_reserve=calibrated)
    config = dataclasses.replace(config, answer_reserve=flag, effort=effort)
    extra = {"thinkctl": {"answer_reserve": asked}} if asked is not None else {}
    req = ChatCompletionRequest(model="t", messages=[{"role": "user", "content": "1"}],
                                max_tokens=400, **extra)  # fmt: skip
    p = plan(req, info, config)
    assert (p.reserve.tokens, p.reserve.source) == size
    assert p.spec.budget.max == 400 - size[0] - len(p.spec.budget.close)
