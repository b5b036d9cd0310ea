"""Calibration from prompts alone (calibration/datasets.py, traces.exit_label): answers read
by the chosen format, forced exits labelled by agreement with the trace's own answer."""

from __future__ import annotations

import json

import pytest

from thinkctl.calibration import datasets
from thinkctl.calibration.traces import exit_label


@pytest.mark.parametrize("fmt, text, want", [
    ("boxed", "so \\boxed{ 9 }.", "9"),
    ("boxed", "no box", None),
    ("choice", "Thus the answer is (C).", "C"),
    ("choice", "\\boxed{B}", "B"),
    ("choice", "nothing here", None),
    ("exact", "work\n\n  42  \n", "42"),
    ("json:answer", 'text {"answer": [1, 2]} after', "[1, 2]"),
    ("json:answer", '{"other": 1}', None),
])  # fmt: skip
def test_each_format_reads_the_answer(fmt, text, want):
    extract, _ = datasets.answer_format(fmt)
    assert extract(text) == want


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="json:FIELD"):
        datasets.answer_format("regex")


def test_prompts_load_as_questions_or_messages(tmp_path):
    path = tmp_path / "p.jsonl"
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q2"}]
    path.write_text(json.dumps({"question": "q1"}) + "\n" + json.dumps({"messages": messages}))
    data = datasets.load_prompts(path)
    assert data.questions == ["q1", messages] and data.labels == "self-agreement"
    path.write_text(json.dumps({"answer": "1"}))
    with pytest.raises(ValueError, match="needs"):
        datasets.load_prompts(path)


def test_an_exit_is_good_when_it_gives_the_traces_own_answer(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "q"}))
    data = datasets.load_prompts(path, "boxed")
    assert exit_label(data, 0, "\\boxed{0.5}", "1/2") == 1  # math-equal, not string-equal
    assert exit_label(data, 0, "\\boxed{3}", "1/2") == 0
    assert exit_label(data, 0, "no answer yet", "1/2") == 0  # the exit changed the answer
    assert exit_label(data, 0, "\\boxed{3}", None) == -1  # no reference: skipped
    gold = datasets.Dataset("g", ["q"], lambda i, t: "3" in t)
    assert exit_label(gold, 0, "\\boxed{3}", None) == 1  # gold answers ignore the trace
