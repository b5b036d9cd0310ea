"""Cue tokens are matched on whole words, not substrings."""

from thinkctl.probes.cues import cue_token_ids, normalise


def test_whole_words_only():
    vocab = {"\u0120Wait": 0, "wait": 1, "await": 2, "\u0120waiting": 3, "Hmm,": 4,
             "\u2581Alternatively": 5, "hm": 6, "Wait.": 7}  # fmt: skip
    ids = cue_token_ids(vocab, {i: t for t, i in vocab.items()}.get)
    assert ids == [0, 1, 4, 5, 7]


def test_normalise():
    assert normalise("\u0120Wait,") == "wait"
    assert normalise("  Hmm...") == "hmm"
