"""Real reasoning models' conventions through the real engine and HTTP server.

Genuine tokenizers and chat templates (testbed/tokenizers) on tiny
random-weight models of the real architectures, with the real 151,936-token vocabulary
(tests/real_models.py). Random weights never think on their own, so thinking is opened by
the template or by a forced `<think>\\n` prefix, and every check is about the plumbing:
the forced close, the reasoning/content split against vLLM's own reasoning parsers,
streaming, `reasoning_tokens`, every controller and effort level.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.conftest import plain_vllm
from tests.real_models import cached_model
from thinkctl.bench.server_process import start_server, stop_server
from thinkctl.probes import model_folder
from thinkctl.probes.cues import cue_token_ids_of

pytestmark = pytest.mark.engine

THINK = "<think>\n"
R1_PRESET = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
R1_INDUCER = "\n**Final Answer**\n\\boxed"  # the R1 preset's (DEER's)
LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class Case:
    model: str  # a convention of tests/real_models.py
    parser: str  # vLLM's reasoning parser for this family
    prompt_opens_thinking: bool  # the template ends in <think>\n
    preset: str | None
    inducer: str
    think_prompt: bool = False  # R1's later template: <think>\n added to the prompt
    tool_parser: str | None = None  # vLLM's, for a template that renders tools


CASES = {
    # R1-Distill's original template: the prompt ends at the Assistant tag.
    "r1_original": Case("r1_distill", "deepseek_r1", False, R1_PRESET, R1_INDUCER),
    # Its later template, which opens thinking in the prompt.
    "r1_think_prompt": Case("r1_distill", "deepseek_r1", True, R1_PRESET, R1_INDUCER, True),
    "qwen3": Case(
        "qwen3", "qwen3", False, "Qwen/Qwen3-4B", model_folder.ANSWER_INDUCER, tool_parser="hermes"
    ),
    "qwen3_thinking_2507": Case(
        "qwen3_thinking_2507",
        "deepseek_r1",
        True,
        None,
        model_folder.ANSWER_INDUCER,
        tool_parser="hermes",
    ),
}


def _folder(case: Case, tmp: Path) -> Path:
    source = cached_model(case.model)
    if not case.think_prompt:
        return source
    folder = tmp / "r1_think_prompt"
    shutil.copytree(source, folder)
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    old = "{{'<｜Assistant｜>'}}{% endif %}"
    assert cfg["chat_template"].endswith(old)
    cfg["chat_template"] = cfg["chat_template"][: -len(old)] + (
        "{{'<｜Assistant｜><think>\\n'}}{% endif %}"
    )
    path.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return folder


@dataclass
class Served:
    case: Case
    client: openai.OpenAI
    tok: object
    base_url: str

    def ask(self, stream: bool = False, **body):
        thinkctl = dict(body.pop("thinkctl", {}))
        if not self.case.prompt_opens_thinking and body.get("reasoning_effort") is None:
            thinkctl.setdefault("mode_prefix", THINK)  # random weights never open it
        thinkctl.setdefault("answer_reserve", 0)  # each test sets the length it checks
        extra = {"thinkctl": thinkctl, "return_token_ids": True, **body.pop("extra_body", {})}
        body.setdefault("temperature", 0.0)
        body.setdefault("max_tokens", 24)
        messages = body.pop("messages", [{"role": "user", "content": "What is 2+2?"}])
        return self.client.chat.completions.create(
            model="m", messages=messages, stream=stream, extra_body=extra, **body,
        )  # fmt: skip

    def close_ids(self, inducer: str | None = None) -> list[int]:
        end = self.tok.convert_tokens_to_ids(model_folder.THINK_END)
        text = self.case.inducer if inducer is None else inducer
        return [end, *self.tok.encode(text, add_special_tokens=False)]

    def vllm_split(self, r) -> tuple[str, str]:
        """vLLM's own reasoning parser on the same token ids, told the prompt as `vllm
        serve` tells it, decoding as its request adjustment asks."""
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.reasoning import ReasoningParserManager

        parser = ReasoningParserManager.get_reasoning_parser(self.case.parser)(self.tok)
        req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}])
        if hasattr(parser, "adjust_request"):
            req = parser.adjust_request(req) or req
        if hasattr(parser, "adjust_initial_state_from_prompt"):
            parser.adjust_initial_state_from_prompt(r.model_extra["prompt_token_ids"])
        ids = r.choices[0].model_extra["token_ids"]
        text = self.tok.decode(ids, skip_special_tokens=req.skip_special_tokens)
        reasoning, content = parser.extract_reasoning(text, req)
        return reasoning or "", content or ""

    def split(self, r) -> tuple[str, str]:
        message = r.choices[0].message
        return _reasoning(message), message.content or ""

    def check_split(self, r) -> None:
        """thinkctl's split equals vLLM's parser's wherever both define it: thinking opened
        (by the prompt or the reply) and closed at most once. Two cases differ by design,
        and are pinned to thinkctl's rule instead:
        - a reply that never opens thinking is all content for thinkctl, whose controllers
          count thinking only inside the block; vLLM 0.32's `deepseek_r1` and `qwen3`
          parsers call it reasoning (they assume replies start inside thinking);
        - a second `</think>` after the block is answer text for thinkctl (and for
          `deepseek_r1`); the `qwen3` parser drops it."""
        ids = r.choices[0].model_extra["token_ids"]
        start, end = self.tok.convert_tokens_to_ids([model_folder.THINK_START,
                                                     model_folder.THINK_END])  # fmt: skip
        reasoning, content = self.split(r)
        if not (self.case.prompt_opens_thinking or start in ids):
            assert reasoning == ""
            assert content == self.tok.decode(ids, skip_special_tokens=True)
            return
        vllm_reasoning, vllm_content = self.vllm_split(r)
        assert reasoning == vllm_reasoning
        if ids.count(end) <= 1 or self.case.parser == "deepseek_r1":
            assert content == vllm_content


@pytest.fixture(scope="module", params=list(CASES))
def served(request, tmp_path_factory) -> Iterator[Served]:
    from transformers import AutoTokenizer

    case = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    folder = _folder(case, tmp)
    args = ["--served-model-name", "m", "--dtype", "float32", "--max-model-len", "1024",
            "--max-num-seqs", "8", "--kv-cache-memory-bytes", str(256 << 20),
            # vLLM's own flag, passed through: random weights would pad JSON with whitespace
            # up to max_tokens where the grammar allows it.
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']  # fmt: skip
    if case.preset:
        args += ["--preset", case.preset]
    if case.tool_parser:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", case.tool_parser]
    try:
        proc, url = start_server(str(folder), tmp / "serve.log", args, timeout_s=600)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    try:
        yield Served(case, client, AutoTokenizer.from_pretrained(folder), url)
    finally:
        stop_server(proc)


def _reasoning(message) -> str:
    return (message.model_extra or {}).get("reasoning") or ""


def test_budget_closes_with_the_end_and_the_inducer_ids_and_splits_like_vllm(served):
    r = served.ask(thinkctl={"max_thinking_tokens": 6})
    choice = r.choices[0]
    ids = choice.model_extra["token_ids"]
    trace = choice.model_extra["thinkctl"]
    assert trace["exit_reason"] == "budget", trace
    (event,) = [e for e in trace["events"] if e["controller"] == "budget"]
    close = served.close_ids()
    assert ids[event["at"] : event["at"] + len(close)] == close
    assert event["forced_tokens"] == len(close)
    assert trace["thinking_tokens"] == 6 == r.usage.completion_tokens_details.reasoning_tokens
    served.check_split(r)
    assert choice.message.content  # the answer follows the close


def test_streaming_gives_the_same_reply(served):
    body = {"thinkctl": {"max_thinking_tokens": 5}, "stream_options": {"include_usage": True}}
    whole = served.ask(**body).choices[0]
    reasoning, content, trace, usage = [], [], None, None
    for chunk in served.ask(stream=True, **body):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            reasoning.append((c.delta.model_extra or {}).get("reasoning") or "")
            content.append(c.delta.content or "")
            trace = (c.model_extra or {}).get("thinkctl") or trace
    assert "".join(reasoning) == _reasoning(whole.message)
    assert "".join(content) == whole.message.content
    assert trace == whole.model_extra["thinkctl"]
    assert usage.completion_tokens_details.reasoning_tokens == 5


@pytest.mark.parametrize(
    "thinkctl, temperature",
    [
        ({"ts": {"strength": 1e6}, "max_thinking_tokens": 12}, 0.0),
        ({"top_h": {"alpha": 0.4, "phase": "both"}, "max_thinking_tokens": 12}, 1.0),
        ({"max_thinking_tokens": 4, "answer_inducer": ""}, 0.0),
    ],
)
def test_every_controller_keeps_vllms_split(served, thinkctl, temperature):
    r = served.ask(thinkctl=thinkctl, temperature=temperature, seed=1)
    choice = r.choices[0]
    ids = choice.model_extra["token_ids"]
    trace = choice.model_extra["thinkctl"]
    for name in ("ts", "top_h"):
        assert (name in thinkctl) == (name in trace["controllers"])
    served.check_split(r)
    assert trace["thinking_tokens"] <= thinkctl["max_thinking_tokens"]
    if thinkctl.get("answer_inducer") == "":
        (event,) = [e for e in trace["events"] if e["controller"] == "budget"]
        assert ids[event["at"] : event["at"] + 1] == served.close_ids("")


@pytest.mark.parametrize("level", LEVELS)
def test_every_effort_level(served, level):
    r = served.ask(reasoning_effort=level, max_tokens=12)
    choice = r.choices[0]
    ids = choice.model_extra["token_ids"]
    trace = choice.model_extra["thinkctl"]
    served.check_split(r)
    thinking = r.usage.completion_tokens_details.reasoning_tokens
    assert thinking == trace["thinking_tokens"]
    if level == "none":
        assert thinking == 0  # thinking skipped (Qwen3's template) or closed at once
    if level == "none" and served.case.prompt_opens_thinking:
        assert trace["exit_reason"] == "budget"
        assert ids[: len(served.close_ids())] == served.close_ids()


def test_cue_words_as_real_models_spell_them_are_found(served):
    cues = set(cue_token_ids_of(served.tok))
    for text in ("Wait", " Wait", "wait", " wait", "\n\nWait", "Hmm", " Hmm", "Alternatively",
                 " Alternatively", "Wait,", "\n\nHmm,"):  # fmt: skip
        ids = served.tok.encode(text, add_special_tokens=False)
        assert cues & set(ids), (text, ids)
    # Cues are whole tokens: "await" and "waiting" are tokens of their own and never cues.
    # (A word BPE splits after a cue's piece, " Waiter" = " Wait" + "er", is seen as one.)
    for text in ("await", "waiting", " awaited"):
        assert not cues & set(served.tok.encode(text, add_special_tokens=False)), text


def test_the_minimum_budget_injects_the_wait_string_as_the_tokenizer_spells_it(served):
    """Tied random weights repeat their last token greedily, so a forced prefix that ends
    in EOS makes EOS the model's top choice inside thinking: below the minimum, the wait
    string replaces it (`ignore_eos` keeps the forced EOS from ending the request)."""
    eos = served.tok.eos_token
    thinkctl = {"min_thinking_tokens": 4, "wait_string": "\n\nWait"}
    if not served.case.prompt_opens_thinking:
        thinkctl["mode_prefix"] = THINK + eos
    else:
        thinkctl["mode_prefix"] = eos
    r = served.ask(thinkctl=thinkctl, extra_body={"ignore_eos": True}, max_tokens=12)
    choice = r.choices[0]
    ids = choice.model_extra["token_ids"]
    (event,) = [e for e in choice.model_extra["thinkctl"]["events"] if e["reason"] == "budget_min"]
    wait = served.tok.encode("\n\nWait", add_special_tokens=False)
    assert ids[event["at"] : event["at"] + len(wait)] == wait
    assert event["forced_tokens"] == len(wait)


def _collect(r, stream: bool) -> dict:
    """A reply's content, reasoning, tool calls (ids aside) and finish reason."""
    if not stream:
        c = r.choices[0]
        calls = [t.function.model_dump() for t in c.message.tool_calls or ()]
        ids = [t.id for t in c.message.tool_calls or ()]
        return {"content": c.message.content or "", "reasoning": _reasoning(c.message),
                "calls": calls, "finish": c.finish_reason, "ids_ok": all(ids)}  # fmt: skip
    out = {"content": "", "reasoning": "", "calls": [], "finish": None, "ids_ok": True}
    calls: dict[int, dict] = {}  # streamed pieces, joined by index as a client joins them
    for chunk in r:
        for c in chunk.choices:
            out["content"] += c.delta.content or ""
            out["reasoning"] += (c.delta.model_extra or {}).get("reasoning") or ""
            for t in c.delta.tool_calls or ():
                call = calls.setdefault(t.index, {"name": "", "arguments": "", "id": None,
                                                  "pieces": 0})  # fmt: skip
                call["id"] = call["id"] or t.id
                call["name"] += (t.function.name if t.function else None) or ""
                call["arguments"] += (t.function.arguments if t.function else None) or ""
                call["pieces"] += 1
            out["finish"] = c.finish_reason or out["finish"]
    out["calls"] = [{"name": c["name"], "arguments": c["arguments"]} for c in calls.values()]
    out["ids_ok"] = all(c["id"] for c in calls.values())
    out["pieces"] = sum(c["pieces"] for c in calls.values())
    return out


# Random weights never call a tool: the reply is forced (thinkctl.mode_prefix) to draft a
# call inside thinking, close it, and call f in the answer. Only the answer's call counts.
TOOLS = [{"type": "function", "function": {
    "name": "f", "description": "A test function.",
    "parameters": {"type": "object", "properties": {"x": {"enum": [1, 2]}}, "required": ["x"],
                   "additionalProperties": False}}}]  # fmt: skip
DRAFT = '<tool_call>{"name": "f", "arguments": {"x": 2}}</tool_call>\n</think>\n\n'
CALL = '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'


def _needs_tools(served: Served) -> None:
    if served.case.tool_parser is None:
        pytest.skip("R1-Distill's template renders no tools")


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_round_trip(served, stream):
    _needs_tools(served)
    prefix = ("" if served.case.prompt_opens_thinking else THINK) + DRAFT + CALL
    r = served.ask(stream=stream, tools=TOOLS, max_tokens=60,
                   thinkctl={"mode_prefix": prefix})  # fmt: skip
    got = _collect(r, stream)
    assert got["calls"] == [{"name": "f", "arguments": '{"x": 1}'}] and got["ids_ok"]
    if stream:  # vLLM's streaming parser sends the call in pieces, as vLLM streams it
        assert got["pieces"] > 1
    # vLLM's rule: "tool_calls" once "auto" called one, but in a stream only when the
    # engine stopped (here max_tokens ran out after the forced call: "length").
    assert got["finish"] == ("length" if stream else "tool_calls")
    assert '"x": 2' in got["reasoning"]
    # The call goes back with its result, as the SDK's tools API sends it.
    messages = [
        {"role": "user", "content": "Call f."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": got["calls"][0]}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "f says 42"},
    ]  # fmt: skip
    again = served.ask(messages=messages, tools=TOOLS, max_tokens=4)
    prompt = served.tok.decode(again.model_extra["prompt_token_ids"])
    assert "<tool_response>\nf says 42\n</tool_response>" in prompt
    assert '{"name": "f", "arguments": {"x": 1}}' in prompt


def test_tools_without_auto_choice_are_left_in_the_answer(served):
    _needs_tools(served)
    prefix = ("" if served.case.prompt_opens_thinking else THINK) + "</think>\n\n" + CALL
    r = served.ask(tools=TOOLS, tool_choice="none", max_tokens=40,
                   thinkctl={"mode_prefix": prefix})  # fmt: skip
    got = _collect(r, False)
    assert got["calls"] == [] and got["content"].lstrip().startswith(CALL)


SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
          "required": ["answer"], "additionalProperties": False}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_schema_answer_validates_after_a_forced_close(served, stream):
    import jsonschema

    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}
    body = {"response_format": fmt, "max_tokens": 64, "thinkctl": {"max_thinking_tokens": 3}}
    got = _collect(served.ask(stream=stream, **body), stream)
    jsonschema.validate(json.loads(got["content"]), SCHEMA)
    assert got["finish"] == "stop"
    r = served.ask(**body)  # the trace: a bare close, no inducer under a grammar
    (event,) = [e for e in r.choices[0].model_extra["thinkctl"]["events"]
                if e["controller"] == "budget"]  # fmt: skip
    assert event["forced_tokens"] == 1
    assert _collect(r, False)["content"] == got["content"]


def test_a_named_tool_choice_gives_its_arguments(served):
    _needs_tools(served)
    choice = {"type": "function", "function": {"name": "f"}}
    r = served.ask(tools=TOOLS, tool_choice=choice, max_tokens=64,
                   thinkctl={"max_thinking_tokens": 3})  # fmt: skip
    got = _collect(r, False)
    (call,) = got["calls"]
    assert call["name"] == "f" and json.loads(call["arguments"])["x"] in (1, 2)
    assert got["finish"] == "stop"  # OpenAI's reason for a named function


@pytest.fixture(scope="module")
def plain_qwen3(tmp_path_factory) -> Iterator[openai.OpenAI]:
    """Plain `vllm serve` on the same Qwen3 folder and flags, for the tool-call parity.
    vLLM 0.32 constrains forced calls to the model's own call format (structural tags)
    unless VLLM_ENFORCE_STRICT_TOOL_CALLING=0; thinkctl gives that setting's JSON form."""
    tmp = tmp_path_factory.mktemp("plain_qwen3")
    args = ["--dtype", "float32", "--max-model-len", "1024", "--max-num-seqs", "8",
            "--kv-cache-memory-bytes", str(256 << 20), "--reasoning-parser", "qwen3",
            "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
            "--structured-outputs-config",
            '{"backend": "xgrammar", "disable_any_whitespace": true}']  # fmt: skip
    env = {"VLLM_ENFORCE_STRICT_TOOL_CALLING": "0"}
    with plain_vllm(str(cached_model("qwen3")), "m", tmp / "vllm.log", args, env) as client:
        yield client


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "f"}}]
)
def test_forced_tool_calls_equal_plain_vllms(served, request, tool_choice):
    """With thinking off (Qwen3's template closes it in the prompt), the grammar holds from
    the first token on both servers: the same token ids and the same calls."""
    if served.case.model != "qwen3":
        pytest.skip("the parity server serves the Qwen3 folder")
    plain_qwen3 = request.getfixturevalue("plain_qwen3")  # started for this case only
    # One call: random weights would otherwise fill max_tokens with calls.
    body = {"messages": [{"role": "user", "content": "Call f."}], "tools": TOOLS,
            "tool_choice": tool_choice, "parallel_tool_calls": False, "max_tokens": 64,
            "temperature": 0.0}  # fmt: skip
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "return_token_ids": True}
    ours = served.client.chat.completions.create(
        model="m", **body, extra_body={**extra, "thinkctl": {"answer_reserve": 0}}
    )
    theirs = plain_qwen3.chat.completions.create(model="m", **body, extra_body=extra)
    a, b = ours.choices[0], theirs.choices[0]
    assert a.model_extra["token_ids"] == b.model_extra["token_ids"]
    assert a.message.tool_calls and b.message.tool_calls, (a.message, b.message)
    calls = [[(t.function.name, json.loads(t.function.arguments)) for t in c.message.tool_calls]
             for c in (a, b)]  # fmt: skip
    assert calls[0] == calls[1] and a.finish_reason == b.finish_reason


def test_streamed_tool_calls_equal_plain_vllms(served, request):
    """tool_choice "auto" in a stream, both servers parsing with vLLM's streaming hermes
    parser: the same call, streamed in pieces, the same text beside it and the same
    finish_reason. Random weights never call a tool, so a regex holds the answer to one call
    on both (Qwen3's template closes thinking in the prompt, so it holds from the first token)."""
    if served.case.model != "qwen3":
        pytest.skip("the parity server serves the Qwen3 folder")
    plain_qwen3 = request.getfixturevalue("plain_qwen3")
    regex = CALL.replace("{", r"\{").replace("}", r"\}").replace("\n", r"\n")
    body = {"messages": [{"role": "user", "content": "Call f."}], "tools": TOOLS,
            "max_tokens": 64, "temperature": 0.0, "stream": True}  # fmt: skip
    extra = {"chat_template_kwargs": {"enable_thinking": False},
             "structured_outputs": {"regex": regex}}  # fmt: skip
    mine = {**extra, "thinkctl": {"answer_reserve": 0}}
    ours = _collect(served.client.chat.completions.create(model="m", **body, extra_body=mine),
                    True)  # fmt: skip
    theirs = _collect(plain_qwen3.chat.completions.create(model="m", **body, extra_body=extra),
                      True)  # fmt: skip
    assert theirs["calls"] == [{"name": "f", "arguments": '{"x": 1}'}], theirs  # the premise
    assert theirs["pieces"] > 1 and ours["pieces"] > 1 and ours["ids_ok"], (ours, theirs)
    for key in ("calls", "content", "reasoning", "finish"):
        assert ours[key] == theirs[key], key
