import random
from itertools import islice

from hypothesis import given
from hypothesis import strategies as st

from thinkctl.testbed import tasks


def test_held_out_splits_are_fixed_disjoint_and_large_enough():
    test, cal = tasks.held_out("test"), tasks.held_out("calibration")
    assert len(test) >= 1000 and len(set(test)) == len(test)
    assert not set(test) & set(cal)
    assert tasks.held_out("test") == test  # seeded: the same every time
    assert {p.difficulty for p in test} == set(tasks.DIFFICULTIES)


def test_train_stream_never_yields_a_held_out_problem():
    held = set(tasks.held_out("test")) | set(tasks.held_out("calibration"))
    assert not held & set(islice(tasks.train_stream(0), 20000))


def test_a_worked_example():
    p = tasks.Problem(3, (("+", 4), ("*", 2), ("-", 5)))
    assert p.values() == [7, 4, 9] and p.answer == 9
    assert p.prompt() == "compute 3 ; A + 4 ; B * 2 ; C - 5"
    assert tasks.is_correct(p, "\\boxed{ 9 }") and not tasks.is_correct(p, "\\boxed{ 8 }")
    assert tasks.extract_answer("9 }") is None


@given(st.integers(0, 2**32), st.sampled_from(tasks.DIFFICULTIES))
def test_answers_are_the_left_to_right_chain_mod_10(seed, difficulty):
    p = tasks.random_problem(random.Random(seed), difficulty)
    v = p.start
    for op, b in p.steps:
        v = eval(f"({v}) {op} {b}") % 10
    assert p.answer == v and len(p.steps) == difficulty + 1
