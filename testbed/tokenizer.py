"""The testbed's word-level tokenizer: one token per word of the task language.

`<think>` and `</think>` are single, non-special tokens (they stay in decoded text, as in
R1 and Qwen3), and the chat template opens thinking in the assistant turn, as
R1-Distill's does.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from thinkctl.probes.model_folder import THINK_END, THINK_START
from thinkctl.testbed.tasks import LABELS, OPS
from thinkctl.testbed.traces import CUES

SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>"]
THINK = [THINK_START, THINK_END]
WORDS = [
    *map(str, range(10)), *OPS, *LABELS, *CUES,
    "=", ",", ".", ";", ":", "compute", "so", "answer", "check", "\\boxed{", "}",
]  # fmt: skip

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|> ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|> ' + message['content'] + ' ' + eos_token + ' ' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> <think>' }}{% endif %}"
)


def vocabulary() -> list[str]:
    return [*SPECIAL, *THINK, *WORDS]


def build_tokenizer():
    """A `PreTrainedTokenizerFast` that vLLM and transformers load from its folder."""
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok.add_special_tokens(SPECIAL)
    tok.add_tokens(THINK)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(out: Path) -> None:
    build_tokenizer().save_pretrained(out)
