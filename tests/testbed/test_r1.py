"""testbed-r1's pure parts: the rest class is exact, and the R1 surface is what forced exits
and cue words need."""

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.probes.cues import cue_token_ids_of
from thinkctl.testbed import r1, tasks
from thinkctl.testbed.traces import TraceStyle, plan


@given(st.integers(2, 12), st.integers(13, 60), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_the_rest_class_softmax_equals_the_full_softmax(n_used, vocab, seed):
    """Expanded weights give the full vocabulary exactly the compact softmax's probabilities:
    each used token its own, and the rest rows together the rest class's."""
    gen = torch.Generator().manual_seed(seed)
    used = sorted(torch.randperm(vocab, generator=gen)[:n_used].tolist())
    compact = {"model.embed_tokens.weight": torch.randn(n_used + 1, 8, generator=gen,
                                                       dtype=torch.float64)}  # fmt: skip
    full = r1.expand_state(compact, used, vocab)["model.embed_tokens.weight"]
    h = torch.randn(8, generator=gen, dtype=torch.float64)
    small = compact["model.embed_tokens.weight"] @ h
    small[-1] += r1.rest_offset(vocab, n_used)
    p_small = torch.softmax(small, 0)
    p_full = torch.softmax(full @ h, 0)
    assert torch.allclose(p_full[used], p_small[:-1], atol=1e-12)
    rest = torch.ones(vocab, dtype=torch.bool)
    rest[used] = False
    assert math.isclose(p_full[rest].sum().item(), p_small[-1].item(), abs_tol=1e-12)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return r1.tokenizer(tmp_path_factory.mktemp("r1tok"))


def test_the_template_opens_thinking_as_r1s_revised_one_does(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "compute 3 ; A + 4"}],
                                   add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert text == "<｜begin▁of▁sentence｜><｜User｜>compute 3 ; A + 4<｜Assistant｜><think>\n"


def test_cue_words_open_paragraphs_as_single_cue_tokens(tok):
    p = tasks.held_out("test")[0]
    text = r1.thinking_text(plan(p, random.Random(0), TraceStyle(max_redundant=3)))
    ids = tok.encode(text, add_special_tokens=False)
    cues = set(cue_token_ids_of(tok))
    paragraphs = text.count("\n\n") - 1  # every paragraph after the first pass is a re-check
    assert sum(t in cues for t in ids) == paragraphs >= 1
    assert tok.convert_ids_to_tokens([ids[i + 1] for i, t in enumerate(ids) if t in cues][:1]) == [
        ","
    ]  # "Wait," as R1 writes it


def test_training_writes_after_the_end_of_thinking_exactly_a_forced_exits_close(tok):
    rng = random.Random(3)
    end_id = tok.convert_tokens_to_ids("</think>")
    inducer = tok.encode(r1.INDUCER, add_special_tokens=False)
    for p in tasks.held_out("calibration")[:20]:
        ids, labels = r1.encode_example(tok, p, rng, TraceStyle(cut_rate=0.5), [])
        prompt = tasks.prompt_ids(tok, [p])[0]
        end = ids.index(end_id)
        assert ids[: len(prompt)] == prompt and set(labels[: len(prompt)]) == {-100}
        assert ids[end + 1 : end + 1 + len(inducer)] == inducer
        assert tasks.extract_answer(tok.decode(ids[end + 1 :])) is not None
        assert labels[end + 1 :] == ids[end + 1 :] and ids[-1] == tok.eos_token_id


def test_a_cut_answers_its_last_stated_answer():
    rng = random.Random(0)
    assert r1.best_guess("A: 3 + 4 = 7.\nSo the answer is 2.\n\nWait, A: 3 + 4 = 7", rng) == 2
    assert r1.best_guess("A: 3 + 4 = 7.\nB: 7 * 2 = 4", rng) == 4
    assert 0 <= r1.best_guess("Okay, let me", rng) <= 9


def test_the_shipped_vocabulary_covers_the_held_out_prompts_and_presets(tok):
    used = set(r1.FOLDER.joinpath("used_ids.json").read_text().strip("[]\n").split(", "))
    used = {int(x) for x in used}
    for p in tasks.held_out("test")[:100]:
        assert set(tok.encode(p.prompt(), add_special_tokens=False)) <= used
    for text, _, _ in r1.instructions():
        assert set(tok.encode(text, add_special_tokens=False)) <= used
