from hypothesis import given
from hypothesis import strategies as st

from tests.control.helpers import DELIMS, END, START
from thinkctl.control.phase import Part, Phase, PhaseTracker, initial_phase


def test_prompt_that_opens_thinking_starts_inside_it():
    assert initial_phase([7, 8, START], DELIMS) is Phase.THINKING
    assert initial_phase([7, START, 9, END, 8], DELIMS) is Phase.BEFORE  # an earlier, closed turn
    assert initial_phase([7, 8], DELIMS) is Phase.BEFORE


def test_parts_and_counts():
    t = PhaseTracker(DELIMS)
    parts = [t.feed(tok) for tok in [7, START, 8, 9, END, 6, START, 6]]
    assert parts == [
        Part.CONTENT,
        Part.DELIMITER,
        Part.REASONING,
        Part.REASONING,
        Part.DELIMITER,
        Part.CONTENT,
        Part.CONTENT,
        Part.CONTENT,
    ]
    assert t.thinking_tokens == 2
    assert t.closed_at == 4
    assert t.phase is Phase.ANSWER


@given(st.lists(st.integers(0, 9), max_size=60))
def test_thinking_tokens_equal_the_reasoning_parts(tokens):
    t = PhaseTracker(DELIMS, Phase.THINKING)
    parts = [t.feed(tok) for tok in tokens]
    assert t.thinking_tokens == parts.count(Part.REASONING)
    assert t.consumed == len(tokens)
    if END in tokens:
        assert t.closed_at == tokens.index(END)
