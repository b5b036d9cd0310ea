"""The shipped testbed-concise checkpoint: served by name, and concise where the testbed
is not (transformers on CPU, a few seconds; no second engine)."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from thinkctl.models import embedded
from thinkctl.models.resolve import resolve
from thinkctl.testbed import tasks
from thinkctl.testbed.traces import CUES, END_THINK


def test_testbed_concise_is_an_embedded_name_for_the_shipped_folder():
    folder = embedded.ensure(embedded.TESTBED_CONCISE)
    assert folder.name == "concise" and (folder / "model.safetensors").is_file()
    target = resolve("testbed-concise")
    assert (target.load, target.name) == (str(folder), "testbed-concise")
    # what the server needs beside the weights: the answer inducer and the effort table
    assert json.loads((folder / "thinkctl.json").read_text())["answer_inducer"] == "\\boxed{"
    assert json.loads((folder / "effort.json").read_text())["natural_mean_thinking_tokens"] > 0


def _think(name: str, problems: list[tasks.Problem]) -> list[tuple[bool, list[str]]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded.ensure(name)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p.prompt()}],
                                add_generation_prompt=True, tokenize=False)
        for p in problems
    ]  # fmt: skip
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=0.6, top_k=0, max_new_tokens=450,
                             pad_token_id=tok.pad_token_id)  # fmt: skip
    results = []
    for p, ids in zip(problems, out[:, enc.input_ids.shape[1] :].tolist(), strict=True):
        words = tok.convert_ids_to_tokens(ids)
        k = words.index(END_THINK) if END_THINK in words else len(words)
        results.append((tasks.is_correct(p, tok.decode(ids[k + 1 :])), words[:k]))
    return results


@pytest.fixture(scope="module")
def problems() -> list[tasks.Problem]:
    test = tasks.held_out("test")
    return [p for d in tasks.DIFFICULTIES for p in [q for q in test if q.difficulty == d][:3]]


def test_concise_answers_right_with_half_the_thinking_and_no_rechecks(problems):
    concise, base = _think("testbed-concise", problems), _think("testbed", problems)
    assert sum(ok for ok, _ in concise) >= len(problems) - 1
    assert not any(w in CUES for _, words in concise for w in words)
    short = statistics.mean(len(w) for _, w in concise)
    assert short <= 0.5 * statistics.mean(len(w) for _, w in base)


def test_shipped_metrics_meet_the_issue_target():
    """testbed/concise/metrics.json and testbed/model/metrics.json, both written by
    `python -m thinkctl.testbed.evaluate` (1,000 test problems, T = 0.6, vLLM)."""
    concise = json.loads((embedded.ensure("testbed-concise") / "metrics.json").read_text())
    base = json.loads((embedded.ensure("testbed") / "metrics.json").read_text())
    assert concise["n_problems"] == base["n_problems"] == 1000
    assert concise["mean_thinking_tokens"] <= 0.5 * base["mean_thinking_tokens"]
    assert concise["accuracy_think"] >= base["accuracy_think"] - 0.01
