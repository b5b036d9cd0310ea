import random

from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.testbed import tasks, traces
from thinkctl.testbed.tokenizer import build_tokenizer


def answers_in(words: list[str]) -> list[int]:
    return [int(words[i + 2]) for i, w in enumerate(words) if w == "so"]


@given(st.integers(0, 2**32), st.sampled_from(tasks.DIFFICULTIES))
def test_trace_ends_correct_with_redundant_rechecks_after_the_last_fix(seed, difficulty):
    rng = random.Random(seed)
    p = tasks.random_problem(rng, difficulty)
    words = traces.thinking_words(p, rng)
    answers = answers_in(words)
    cues = [w for w in words if w in traces.CUES]
    assert len(cues) == len(answers) - 1  # a cue opens every re-check
    assert answers[-1] == p.answer and answers[1:] == [p.answer] * len(cues)
    assert 1 <= len(cues) - (answers[0] != p.answer) <= traces.TraceStyle().max_redundant


def test_first_passes_slip_at_the_configured_rate():
    rng = random.Random(0)
    problems = [tasks.random_problem(rng, 3) for _ in range(3000)]
    wrong = sum(answers_in(traces.thinking_words(p, rng))[0] != p.answer for p in problems)
    assert 0.2 < wrong / len(problems) < 0.5


TOK = build_tokenizer()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(tasks.DIFFICULTIES))
def test_every_word_is_one_token(seed, difficulty):
    tok = TOK
    rng = random.Random(seed)
    p = tasks.random_problem(rng, difficulty)
    text = traces.completion_text(p, rng)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.unk_token_id not in ids and len(ids) == len(text.split())
    assert tok.decode(ids) == text
    assert [tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>")] == [6, 7]
    prompt = tok.apply_chat_template([{"role": "user", "content": p.prompt()}],
                                     add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert prompt.endswith("<|assistant|> <think>")
