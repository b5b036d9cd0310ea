"""Cue words ("wait", "hmm", "alternatively"): where LYNX probes are asked to decide.

Cues are matched on token ids, resolved once per tokenizer. A token is a cue when its
text, stripped of whitespace, word-boundary markers and surrounding punctuation, equals
a cue word (case-insensitive): " Wait" and "wait," match, "await" and "waiting" do not.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_CUES = ("wait", "hmm", "alternatively")
# Marks BPE/SentencePiece tokenizers put on word-initial tokens.
_WORD_MARKS = "\u0120\u2581\u010a"  # Ġ, ▁, Ċ
_PUNCT = " \t\n,.;:!?\"'()[]*-"


def normalise(text: str) -> str:
    return text.strip(_WORD_MARKS).strip(_PUNCT).strip(_WORD_MARKS).lower()


def cue_token_ids(vocab: dict[str, int], decode, words: Iterable[str] = DEFAULT_CUES) -> list[int]:
    """Ids of tokens whose text is a cue word. `decode(id) -> str` gives a token's text."""
    wanted = {w.lower() for w in words}
    ids = []
    for _, token_id in vocab.items():
        if normalise(decode(token_id)) in wanted:
            ids.append(token_id)
    return sorted(set(ids))


def cue_token_ids_of(tokenizer, words: Iterable[str] = DEFAULT_CUES) -> list[int]:
    """The same for a Hugging Face tokenizer."""
    return cue_token_ids(
        tokenizer.get_vocab(), lambda i: tokenizer.decode([i], skip_special_tokens=False), words
    )
