"""Every preset, request -> (prompt, control spec), with the model's tokenizer conventions as
the catalogue writes them down (tests/catalog/conventions.py): no hub, no engine."""

from __future__ import annotations

import pytest

from tests.models.conventions import ConventionTokenizer
from thinkctl.models.preset import Preset
from thinkctl.models.schema import Sampling, load
from thinkctl.probes.effort_table import LEVEL_TABLE
from thinkctl.probes.model_folder import Conventions, ThinkTokens
from thinkctl.server.config import ServerConfig
from thinkctl.server.model_info import ModelInfo
from thinkctl.server.plan import apply_preset, plan
from thinkctl.server.protocol import ChatCompletionRequest

QUESTION = "What is 6 * 7?"
UNCALIBRATED_BUDGETS = {k: v.uncalibrated_budget for k, v in LEVEL_TABLE.items()}
LEVELS = [None, *UNCALIBRATED_BUDGETS]
R1_THINK = (151648, 151649)
BOXED_DS = "Let's think step by step and output the final answer within \\boxed{}."
BOXED_R1 = "Please reason step by step, and put your final answer within \\boxed{}."


class Served:
    """One catalogue model as `serve --model ID` configures it, minus the engine."""

    def __init__(self, model_id: str, instruction: bool = True) -> None:
        catalog = load()
        self.entry = catalog.find(model_id)
        assert self.entry is not None
        self.tok = ConventionTokenizer(catalog.chat_format(self.entry))
        preset = Preset(self.entry, instruction)
        conv = Conventions().over(preset.control_defaults())
        self.config = ServerConfig(model_name=model_id, preset=preset, conventions=conv)
        self.info = ModelInfo(model_id, ThinkTokens.of(conv, self.tok), max_model_len=32768)

    def ask(self, messages: list[dict] | None = None, **body):
        messages = messages or [{"role": "user", "content": QUESTION}]
        req = ChatCompletionRequest(model=self.entry.id, messages=messages, **body)
        applied = apply_preset(req, self.config)  # the plan's step 2, checked on its own
        planned = plan(req, self.info, self.config)
        for key in ("temperature", "top_p"):  # the preset's sampling reaches the engine
            assert planned.sampling[key] == (getattr(applied, key) if getattr(applied, key)
                                             is not None else 1.0)  # fmt: skip
        return applied, self.tok.decode(planned.prompt_ids), planned.spec

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text)


ALL = [m.id for m in load().models]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("model_id", ALL)
def test_every_preset_turns_every_effort_level_into_its_own_mechanism(model_id, level):
    s = Served(model_id)
    body = {"reasoning_effort": level} if level else {}
    req, prompt, spec = s.ask(**body)
    entry, action = s.entry, s.entry.action(level)
    fmt = load().chat_format(entry)
    if entry.think:  # recorded single tokens are what the server resolves
        start, end = entry.think
        assert s.info.delims is not None
        for text, tid in ((start, s.info.delims.start), (end, s.info.delims.end)):
            assert fmt.special_tokens[text] in (None, tid)
    if action and action.mode_prefix:
        assert spec.mode == s.ids(action.mode_prefix)
    elif spec is not None:
        assert spec.mode is None
    if action and action.chat_template_kwargs:
        assert req.chat_template_kwargs == action.chat_template_kwargs
    if action and action.system_prompt:
        assert req.messages[0].role == "system" and req.messages[0].content == action.system_prompt
    if entry.length_prompt:
        assert entry.length_prompt.template.split("{n}")[0] in req.messages[-1].content
    sampling = (
        action.sampling.over(entry.sampling) if action and action.sampling else entry.sampling
    )
    assert req.temperature == sampling.temperature and req.top_p == sampling.top_p
    cap = UNCALIBRATED_BUDGETS.get(level) if level else None
    if cap is not None and s.info.delims is not None:  # composed with the stop controllers
        assert spec.budget.max == cap and spec.budget.close[0] == s.info.delims.end
    elif spec is not None:
        assert spec.budget is None
    assert prompt.endswith(fmt.generation_prompt) or prompt.endswith(
        fmt.no_thinking_generation_prompt or "\0"
    )


def test_thinkless_low_effort_starts_the_reply_with_short():
    s = Served("Vinnnf/Thinkless-1.5B-RL-DeepScaleR")
    req, prompt, spec = s.ask(reasoning_effort="low")
    assert spec.mode == s.ids("<short>") == [151650]  # <|quad_start|>, renamed (Reasoning-SFT)
    # The template leaves the mode to the first reply token: thinking is not opened.
    assert prompt.endswith("<｜User｜>" + BOXED_R1 + "\n" + QUESTION + "<｜Assistant｜>\n")
    assert (req.temperature, req.top_p) == (0.6, 0.95)


def test_thinkless_high_effort_forces_think_and_composes_with_a_budget():
    s = Served("Vinnnf/Thinkless-1.5B-RL-DeepScaleR")
    _, _, spec = s.ask(reasoning_effort="high", thinkctl={"max_thinking_tokens": 50})
    assert spec.mode == [R1_THINK[0]]
    assert spec.budget.max == 50 and spec.budget.close[0] == R1_THINK[1]
    assert spec.think == R1_THINK


def test_thinkless_medium_effort_leaves_the_mode_to_the_model():
    _, _, spec = Served("Vinnnf/Thinkless-1.5B-RL-DeepScaleR").ask(reasoning_effort="medium")
    assert spec.mode is None and spec.budget.max == UNCALIBRATED_BUDGETS["medium"]


@pytest.mark.parametrize(
    "model_id, sentence",
    [("l3lab/L1-Qwen-1.5B-Exact", "Think for 256 tokens."),
     ("l3lab/L1-Qwen-1.5B-Max", "Think for maximum 256 tokens.")],
)  # fmt: skip
def test_l1_prompt_ends_with_its_length_sentence(model_id, sentence):
    req, prompt, spec = Served(model_id).ask(reasoning_effort="low")
    assert req.messages[-1].content == f"{QUESTION} {BOXED_DS} {sentence}"
    assert prompt.endswith(f"{sentence}<｜Assistant｜><think>\n")
    assert spec.budget.max == 256  # the same N, enforced by the budget controller


@pytest.mark.parametrize(
    "body, n, cap",
    [({"thinkctl": {"max_thinking_tokens": 700}}, 700, 700),
     ({"thinking_token_budget": 50}, 100, 50),     # N clamped to the trained range; cap kept
     ({"reasoning_effort": "xhigh"}, 4000, 16384),  # the table's 16384, clamped for the prompt
     ({"reasoning_effort": "max"}, 4000, None),
     ({}, 1024, None)],                             # nothing named: the default N, no cap
)  # fmt: skip
def test_l1_n_is_the_requests_thinking_budget(body, n, cap):
    req, _, spec = Served("l3lab/L1-Qwen-1.5B-Exact").ask(**body)
    assert req.messages[-1].content.endswith(f" Think for {n} tokens.")
    assert (spec.budget.max if spec and spec.budget else None) == cap


def test_adaptthink_low_effort_prefills_the_end_of_thinking():
    s = Served("THU-KEG/AdaptThink-1.5B-delta0.05")
    _, prompt, spec = s.ask(reasoning_effort="low")
    assert prompt.endswith("<｜Assistant｜><think>\n")  # the template opens thinking ...
    assert spec.mode == [R1_THINK[1]]  # ... and the reply starts by closing it: NoThinking
    _, _, spec = s.ask(reasoning_effort="high")
    assert spec.mode is None


def test_qwen3_none_renders_the_template_with_thinking_off():
    s = Served("Qwen/Qwen3-8B")
    req, prompt, spec = s.ask(reasoning_effort="none")
    assert req.chat_template_kwargs == {"enable_thinking": False}
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert (req.temperature, req.top_p) == (0.7, 0.8)  # the card's non-thinking sampling
    assert s.info.delims.end == 151668
    req, prompt, _ = s.ask(reasoning_effort="high")
    assert req.chat_template_kwargs == {"enable_thinking": True}
    assert prompt.endswith("<|im_start|>assistant\n") and (req.temperature, req.top_p) == (
        0.6,
        0.95,
    )


def test_qwen3_clients_own_template_kwargs_win():
    req, prompt, _ = Served("Qwen/Qwen3-4B").ask(
        reasoning_effort="none", chat_template_kwargs={"enable_thinking": True}
    )
    assert req.chat_template_kwargs == {"enable_thinking": True}
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "model_id, instruction, separator",
    [("nvidia/DLER-R1-1.5B-Research", BOXED_DS, " "),
     ("nvidia/DLER-R1-7B-Research", BOXED_DS, " "),
     ("agentica-org/DeepScaleR-1.5B-Preview", BOXED_DS, " "),
     ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", BOXED_R1, "\n"),
     ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", BOXED_R1, "\n")],
)  # fmt: skip
def test_r1_family_think_in_think_tags_and_ask_for_a_boxed_answer(model_id, instruction, separator):
    s = Served(model_id)
    req, prompt, spec = s.ask(reasoning_effort="low")
    assert (s.info.delims.start, s.info.delims.end) == R1_THINK
    assert req.messages[-1].content == QUESTION + separator + instruction
    assert prompt.endswith("<｜Assistant｜><think>\n")
    assert spec.budget.close == [R1_THINK[1], *s.ids("\n**Final Answer**\n\\boxed")]


def test_nemotron_effort_switches_the_system_prompt():
    s = Served("nvidia/DLER-Llama-Nemotron-8B-Merge-Research")
    req, prompt, _ = s.ask(reasoning_effort="none")
    assert req.messages[0].content == "detailed thinking off" and req.temperature == 0.0
    assert prompt.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\ndetailed thinking off"
    )
    req, _, _ = s.ask()
    assert req.messages[0].content == "detailed thinking on"
    own = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    req, _, _ = s.ask(own, reasoning_effort="high")
    assert [m.content for m in req.messages if m.role == "system"] == ["Be brief."]


def test_what_the_client_sets_wins_over_the_preset():
    s = Served("Vinnnf/Thinkless-1.5B-RL-DeepScaleR")
    req, _, spec = s.ask(
        reasoning_effort="low", temperature=1.0, top_p=0.5, thinkctl={"mode_prefix": "<think>"}
    )
    assert spec.mode == [R1_THINK[0]] and (req.temperature, req.top_p) == (1.0, 0.5)


def test_the_instruction_is_added_once_and_can_be_turned_off():
    asked = [{"role": "user", "content": f"{QUESTION} {BOXED_DS}"}]
    req, _, _ = Served("nvidia/DLER-R1-1.5B-Research").ask(asked)
    assert req.messages[-1].content == f"{QUESTION} {BOXED_DS}"
    req, _, _ = Served("nvidia/DLER-R1-1.5B-Research", instruction=False).ask()
    assert req.messages[-1].content == QUESTION
    # The length prompt is L1's mechanism, not an instruction: it stays.
    req, _, _ = Served("l3lab/L1-Qwen-1.5B-Max", instruction=False).ask(reasoning_effort="low")
    assert req.messages[-1].content == f"{QUESTION} Think for maximum 256 tokens."


def test_only_the_last_user_message_is_changed():
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": QUESTION},
    ]
    req, _, _ = Served("l3lab/L1-Qwen-1.5B-Exact").ask(history, reasoning_effort="low")
    assert [m.content for m in req.messages[:2]] == ["first", "ok"]
    assert req.messages[2].content.endswith("Think for 256 tokens.")


def test_without_a_preset_the_request_passes_through():
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": QUESTION}])
    assert apply_preset(req, ServerConfig(model_name="m")) is req


def test_sampling_overrides_merge_over_the_entry():
    base = Sampling(temperature=0.6, top_p=0.95, max_tokens=100)
    assert Sampling(temperature=0.7).over(base) == Sampling(
        temperature=0.7, top_p=0.95, max_tokens=100
    )


def test_a_presets_max_tokens_is_a_default_that_fits_the_context():
    from types import SimpleNamespace

    from thinkctl.server.limits import Limits
    from thinkctl.server.plan import _sampling

    def max_tokens(default, cap=None, **body) -> int:
        config = ServerConfig(model_name="m", default_max_tokens=default,
                              limits=Limits(max_completion_tokens=cap))  # fmt: skip
        info = SimpleNamespace(max_model_len=1000, sampling_defaults={}, max_logprobs=20)
        req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], **body)
        return _sampling(req, info, config, prompt_len=200)["max_tokens"]

    assert max_tokens(16384) == 800  # the room left in the context
    assert max_tokens(300) == 300
    assert max_tokens(300, cap=100) == 100  # a server cap wins
    assert max_tokens(300, max_tokens=500) == 500  # the client's value wins
    assert max_tokens(None) == 800
