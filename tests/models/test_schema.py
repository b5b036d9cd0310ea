"""The catalogue's data: coverage of the issue's models, consistency, and the validator."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tests.models.conventions import ConventionTokenizer
from thinkctl.models import embedded
from thinkctl.models.schema import CATALOG_FILE, load, parse

# Every model issue 7 names, with how it is asked for length or mode.
EXPECTED = {
    "nvidia/DLER-R1-1.5B-Research": "none",
    "nvidia/DLER-R1-7B-Research": "none",
    "nvidia/DLER-Llama-Nemotron-8B-Merge-Research": "system_prompt",
    "Vinnnf/Thinkless-1.5B-RL-DeepScaleR": "first_token",
    "l3lab/L1-Qwen-1.5B-Exact": "prompt_suffix",
    "l3lab/L1-Qwen-1.5B-Max": "prompt_suffix",
    "THU-KEG/AdaptThink-1.5B-delta0": "prefill_end_think",
    "THU-KEG/AdaptThink-1.5B-delta0.01": "prefill_end_think",
    "THU-KEG/AdaptThink-1.5B-delta0.02": "prefill_end_think",
    "THU-KEG/AdaptThink-1.5B-delta0.05": "prefill_end_think",
    "THU-KEG/AdaptThink-1.5B-delta0.075": "prefill_end_think",
    "THU-KEG/AdaptThink-1.5B-delta0.1": "prefill_end_think",
    "THU-KEG/AdaptThink-7B-delta0.05": "prefill_end_think",
    "agentica-org/DeepScaleR-1.5B-Preview": "none",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "none",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "none",
    **{
        f"Qwen/Qwen3-{s}": "chat_template_kwarg" for s in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")
    },
    "testbed": "none",
    "testbed-concise": "none",
}


def test_the_catalogue_covers_every_model_of_the_issue():
    got = {m.id: m.mechanism for m in load().models}
    assert got == EXPECTED


def test_every_entry_cites_its_sources_and_every_reported_number_has_one():
    for m in load().models:
        assert m.sources, m.id
        for r in m.results:
            assert r.source.startswith(("https://", "testbed/", "shared/")), (m.id, r)
        assert m.licence.verified or "licence" in " ".join(m.unverified), m.id


def test_testbed_concise_refers_to_its_embedded_model():
    entry = load().find("testbed-concise")
    assert entry.embedded == "testbed-concise" and entry.base_model == "testbed"
    assert entry.tokenizer == "testbed" and entry.think == ("<think>", "</think>")


@pytest.mark.parametrize("model_id", ["testbed", "testbed-concise"])
def test_the_testbed_conventions_are_its_real_tokenizers(model_id):
    """The written-down conventions render what the real chat template renders."""
    from transformers import AutoTokenizer

    entry = load().find(model_id)
    tokenizer = AutoTokenizer.from_pretrained(embedded.ensure(entry.embedded))
    fmt = load().chat_format(entry)
    conv = ConventionTokenizer(fmt)
    for messages in (
        [{"role": "user", "content": "compute 3 ; A + 4"}],
        [{"role": "user", "content": "compute 1 ; A + 1"},
         {"role": "assistant", "content": "\\boxed{ 2 }"},
         {"role": "user", "content": "compute 3 ; A * 3"}],
    ):  # fmt: skip
        real = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert conv.render(messages) == real
    for text, tid in fmt.special_tokens.items():
        assert tokenizer.encode(text, add_special_tokens=False) == [tid]
    assert tokenizer.eos_token == fmt.eos and tokenizer.bos_token == fmt.bos


def _raw() -> dict:
    return json.loads(CATALOG_FILE.read_text(encoding="utf-8"))


def _with(entry_changes: dict, model_id: str = "Vinnnf/Thinkless-1.5B-RL-DeepScaleR") -> dict:
    data = _raw()
    for m in data["models"]:
        if m["id"] == model_id:
            m.update(entry_changes)
    return data


@pytest.mark.parametrize(
    "changes, message",
    [({"effort": {"low": {"chat_template_kwargs": {"enable_thinking": False}}}}, "does not use"),
     ({"mechanism": "prompt_suffix", "effort": {}}, "length_prompt"),
     ({"effort": {}}, "needs effort actions"),
     ({"effort": {"low": {"mode_prefix": "<nope>"}}}, "not among"),
     ({"tokenizer": "nope"}, "unknown tokenizer"),
     ({"sources": []}, "sources")],
)  # fmt: skip
def test_the_validator_refuses_inconsistent_entries(changes, message):
    with pytest.raises(ValidationError, match=message):
        parse(_with(changes))


def test_prefill_end_think_must_prefill_the_end_token():
    bad = {"effort": {"low": {"mode_prefix": "<think>"}}}
    with pytest.raises(ValidationError, match="must prefill"):
        parse(_with(bad, "THU-KEG/AdaptThink-1.5B-delta0.05"))


def test_a_length_prompt_needs_its_placeholder_and_a_sane_range():
    lp = {"template": "Think briefly.", "min_tokens": 1, "max_tokens": 9, "default_tokens": 5}
    with pytest.raises(ValidationError, match="placeholder"):
        parse(_with({"length_prompt": lp}, "l3lab/L1-Qwen-1.5B-Exact"))
    lp = {"template": "{n}", "min_tokens": 10, "max_tokens": 9, "default_tokens": 5}
    with pytest.raises(ValidationError, match="min_tokens"):
        parse(_with({"length_prompt": lp}, "l3lab/L1-Qwen-1.5B-Exact"))


def test_same_as_must_name_an_earlier_entry_and_ids_are_unique():
    data = _raw()
    data["models"].insert(0, {"id": "x", "same_as": "testbed"})
    with pytest.raises(ValueError, match="earlier entry"):
        parse(data)
    data = _raw()
    data["models"].append({"id": "testbed", "same_as": "testbed"})
    with pytest.raises(ValidationError, match="duplicate"):
        parse(data)
