"""Tiny random-weight models of the real architectures, with the genuine tokenizers that
testbed/qwen_tokenizers.py rebuilds (three chat conventions: ``r1_distill``, ``qwen3``,
``qwen3_thinking_2507``), for tests.

The models are ``Qwen2ForCausalLM`` (R1-Distill-Qwen) or ``Qwen3ForCausalLM`` with the
real vocabulary size and special-token ids, 2 layers of width 64 and seeded random
weights (about 20 MB, bfloat16): transformers and vLLM (CPU) load them, and they
generate noise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from thinkctl.testbed.qwen_tokenizers import MODELS, VOCAB_SIZE, check, tokenizer_folder

# Bump when the built folders change, so that cached copies are rebuilt.
BUILD_VERSION = 1
STAMP = "thinkctl_real_model.json"


def build_model(name: str, out: Path) -> Path:
    """Write `name`'s tokenizer folder plus a tiny seeded random-weight model into `out`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config, Qwen3Config

    check(name)
    spec = MODELS[name]
    out = tokenizer_folder(name, out)
    common: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": spec["max_position_embeddings"],
        "rope_theta": spec["rope_theta"],
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        **spec["config"],
    }
    if spec["model_type"] == "qwen2":
        config = Qwen2Config(num_attention_heads=1, **common)  # head_dim 64 = hidden / heads
    else:
        config = Qwen3Config(num_attention_heads=2, head_dim=64, **common)  # GQA 2:1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(**spec["generation"])
    model.save_pretrained(out)
    return out


def cache_root() -> Path:
    """THINKCTL_CACHE (as models/embedded.py), else ~/.cache/thinkctl; then real_models/."""
    root = os.environ.get("THINKCTL_CACHE") or Path.home() / ".cache" / "thinkctl"
    return Path(root) / "real_models"


def cached_model(name: str) -> Path:
    """`build_model(name)` built once into the cache and reused afterwards."""
    check(name)
    target = cache_root() / name
    stamp = {"name": name, "version": BUILD_VERSION}
    try:
        if json.loads((target / STAMP).read_text()) == stamp:
            return target
    except (OSError, ValueError):
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build_model(name, tmp)
        (tmp / STAMP).write_text(json.dumps(stamp))
        shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            # another process finished first: use its copy if it is complete
            if not (target / STAMP).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
