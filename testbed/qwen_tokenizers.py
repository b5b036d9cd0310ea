"""Genuine Qwen-family tokenizers, rebuilt from the data in testbed/tokenizers/ (vocabulary,
BPE merges, special tokens, chat templates; provenance in its README.md).

Three chat conventions: ``r1_distill`` (DeepSeek-R1-Distill-Qwen, original template: the
prompt ends at ``<｜Assistant｜>`` and the model opens ``<think>`` itself), ``qwen3``
(hybrid; ``enable_thinking=False`` renders an empty think block) and
``qwen3_thinking_2507`` (the prompt ends in ``<think>\\n``). testbed-r1 (testbed/r1.py)
and the tests' tiny real-architecture models (tests/real_models.py) use them.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "tokenizers"
CONVENTIONS = ("r1_distill", "qwen3", "qwen3_thinking_2507")

# Qwen2's pre-tokenizer split (Qwen2TokenizerFast; the models' tokenizer.json).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
VOCAB_SIZE = 151936  # config.json of R1-Distill-Qwen-1.5B and of every Qwen3

# Per convention: the architecture and the real config/generation_config token ids;
# rope_theta and context length are those of R1-Distill-Qwen-1.5B, Qwen3-4B and
# Qwen3-4B-Thinking-2507.
_QWEN3_IDS: dict[str, Any] = {
    "model_type": "qwen3",
    "config": {"bos_token_id": 151643, "eos_token_id": 151645},
    "generation": {
        "bos_token_id": 151643,
        "eos_token_id": [151645, 151643],
        "pad_token_id": 151643,
    },
}
MODELS: dict[str, dict[str, Any]] = {
    "r1_distill": {
        "model_type": "qwen2",
        "config": {"bos_token_id": 151643, "eos_token_id": 151643},
        "generation": {"bos_token_id": 151646, "eos_token_id": 151643},
        "rope_theta": 10000.0,
        "max_position_embeddings": 131072,
    },
    "qwen3": {**_QWEN3_IDS, "rope_theta": 1000000.0, "max_position_embeddings": 40960},
    "qwen3_thinking_2507": {
        **_QWEN3_IDS,
        "rope_theta": 5000000.0,
        "max_position_embeddings": 262144,
    },
}


def check(name: str) -> None:
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention {name!r}; expected one of {CONVENTIONS}")


def _added_tokens(name: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The added tokens (id, content, special) in id order."""
    if name == "r1_distill":
        # R1-Distill's tokenizer_config.json has no added_tokens_decoder; its tokenizer.json
        # holds them (table in fixtures, see README.md).
        rows = json.loads((FIXTURES / name / "added_tokens.json").read_text(encoding="utf-8"))
    else:
        rows = [
            {"id": int(i), "content": t["content"], "special": t["special"]}
            for i, t in config["added_tokens_decoder"].items()
        ]
    return sorted(rows, key=lambda r: r["id"])


def build_tokenizer_json(name: str) -> Any:
    """A `tokenizers.Tokenizer` laid out as the model's genuine tokenizer.json."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    check(name)
    config = json.loads((FIXTURES / name / "tokenizer_config.json").read_text(encoding="utf-8"))
    bpe_dir = FIXTURES / "qwen2_bpe"
    vocab = json.loads(gzip.decompress((bpe_dir / "vocab.json.gz").read_bytes()))
    lines = gzip.decompress((bpe_dir / "merges.txt.gz").read_bytes()).decode().splitlines()
    # skip only the "#version" header: some merges start with "#" ("# include", "## ##")
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]

    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
            ignore_merges=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    for row in _added_tokens(name, config):
        added = AddedToken(row["content"], normalized=False, special=row["special"])
        (tok.add_special_tokens if row["special"] else tok.add_tokens)([added])
        if tok.token_to_id(row["content"]) != row["id"]:
            raise AssertionError(f"{row['content']!r} did not get id {row['id']}")
    if name == "r1_distill":
        # add_bos_token: true, as R1-Distill's tokenizer.json post-processor
        bos = "<｜begin▁of▁sentence｜>"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0",
            pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    else:
        tok.post_processor = processors.ByteLevel(
            add_prefix_space=False, trim_offsets=False, use_regex=False
        )
    return tok


def tokenizer_folder(name: str, out: Path) -> Path:
    """Write a loadable HF tokenizer folder for `name` into `out`: the rebuilt
    tokenizer.json, the genuine tokenizer_config.json (chat template, special tokens) and
    a stub config.json naming the model type (build_model replaces it with the full one).

    The stub matters: R1-Distill's config says ``LlamaTokenizerFast``, which transformers 5
    honours when nothing names the model type, and then it drops every space and newline.
    Next to a ``qwen2`` config.json, as in the real repository, it loads Qwen2Tokenizer.
    """
    check(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer_json(name).save(str(out / "tokenizer.json"))
    shutil.copyfile(FIXTURES / name / "tokenizer_config.json", out / "tokenizer_config.json")
    if not (out / "config.json").exists():
        import transformers

        # transformers_version also keeps transformers from suspecting a Mistral regex
        stub = {
            "model_type": MODELS[name]["model_type"],
            **MODELS[name]["config"],
            "transformers_version": transformers.__version__,
        }
        (out / "config.json").write_text(json.dumps(stub, indent=2) + "\n")
    return out
