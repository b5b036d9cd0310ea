"""What a probe reads, and which model it was made for.

`FeatureSpec` fixes the feature definition shared by calibration and serving: the
blocks whose residual stream is concatenated (see probes/capture.py for the exact
definition), the cue tokens, the end-of-thinking token, and whether the sampled-token
confidence since the previous cue (probes/confidence.py) is appended as one more value.
`ModelFacts` identifies the model (sizes and a tokenizer fingerprint), so a probe made
for one model is refused by another.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field


class ModelFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tokenizer_sha256: str = Field(min_length=64, max_length=64)


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[int, ...] = Field(min_length=1)  # 1-based decoder blocks
    cue_words: tuple[str, ...] = Field(min_length=1)
    cue_token_ids: tuple[int, ...] = Field(min_length=1)
    think_end_id: int
    confidence: bool = False  # append probes/confidence.py's value after the hidden features

    def dim(self, hidden_size: int) -> int:
        return hidden_size * len(self.layers) + int(self.confidence)


def default_layers(num_layers: int) -> tuple[int, ...]:
    """Every block of a small model; else about a third, a half and the last (as LYNX
    does for a 28-layer model: 9, 16, 28)."""
    if num_layers <= 8:
        return tuple(range(1, num_layers + 1))
    picks = {round(num_layers / 3), round(num_layers * 4 / 7), num_layers}
    return tuple(sorted(k for k in picks if k >= 1))


def tokenizer_sha256(tokenizer) -> str:
    """A fingerprint of the vocabulary (token -> id), stable across library versions."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


def model_facts(hf_config, tokenizer) -> ModelFacts:
    """Facts of a model from its Hugging Face config and tokenizer."""
    text = getattr(hf_config, "get_text_config", lambda: hf_config)()
    return ModelFacts(
        hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers,
        vocab_size=text.vocab_size,
        tokenizer_sha256=tokenizer_sha256(tokenizer),
    )
