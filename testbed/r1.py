"""testbed-r1: the testbed's task and behaviour in DeepSeek-R1-Distill-Qwen's own surface.

- **Tokenizer and template**: R1-Distill-Qwen's genuine tokenizer (testbed/qwen_tokenizers.py)
  with the later revision of its chat template, whose generation prompt ends in
  `<｜Assistant｜><think>\\n` (the original ends at `<｜Assistant｜>`; the revision appends
  `<think>\\n`, nothing else changed).
- **Traces** (same plans as the testbed's, testbed/traces.py), as R1 writes them:

      Okay, let me work through the chain one step at a time.

      A: 3 + 4 = 7.
      B: 7 * 2 = 9.
      So the answer is 9.

      Wait, let me check that again.
      A: 3 + 4 = 7.
      B: 7 * 2 = 4.
      So the answer is 4.
      </think>
      **Final Answer**
      \\boxed{4}

  After `</think>` comes the R1 presets' answer inducer, `\\n**Final Answer**\\n\\boxed`
  (DEER's), then `{d}`, encoded apart from it, so that a forced exit's close sequence is
  exactly what training wrote.
- **Architecture**: `Qwen2ForCausalLM` with the full 151,936-row vocabulary (tied
  embeddings). Only the tokens the task uses get rows of their own; every other row is one
  shared "rest" vector. Then the full softmax equals a softmax over the used tokens plus one
  class whose logit is the rest row's + log(number of rest rows), so training on that small
  softmax (testbed/train.py) is exact for the full model, and the package ships only the
  used rows (`r1/compact.safetensors`, `r1/used_ids.json`). `ensure_folder` expands them,
  once, into a full HF folder in the cache.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thinkctl.probes.model_folder import THINK_END, THINK_START
from thinkctl.testbed import tasks
from thinkctl.testbed.traces import Plan, Step, TraceStyle, plan

NAME = "testbed-r1"
FOLDER = Path(__file__).parent / "r1"
INDUCER = "\n**Final Answer**\n\\boxed"
WAIT = "Wait"
CONVENTION = "r1_distill"
_ORIGINAL_PROMPT_END = "{{'<｜Assistant｜>'}}{% endif %}"
_REVISED_PROMPT_END = "{{'<｜Assistant｜><think>\\n'}}{% endif %}"
# How each cue word opens a re-check paragraph.
RECHECK = {
    "Wait": "Wait, let me check that again.",
    "Hmm": "Hmm, let me verify each step.",
    "Alternatively": "Alternatively, I can recompute it from the start.",
}
OPENING = "Okay, let me work through the chain one step at a time."


# --- the tokenizer ------------------------------------------------------------------------


def write_tokenizer(out: Path) -> Path:
    """R1-Distill-Qwen's tokenizer files, with the revised template, into `out`."""
    from thinkctl.testbed.qwen_tokenizers import tokenizer_folder

    tokenizer_folder(CONVENTION, out)
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    template = config["chat_template"]
    if not template.endswith(_ORIGINAL_PROMPT_END):
        raise AssertionError("R1-Distill's chat template no longer ends as expected")
    config["chat_template"] = template[: -len(_ORIGINAL_PROMPT_END)] + _REVISED_PROMPT_END
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def tokenizer(cache: Path | None = None) -> Any:
    """The tokenizer, written once into `cache` (default: a temporary folder)."""
    from transformers import AutoTokenizer

    folder = cache if cache is not None else Path(tempfile.mkdtemp(prefix="testbed-r1-tok-"))
    if not (folder / "tokenizer.json").is_file():
        write_tokenizer(folder)
    return AutoTokenizer.from_pretrained(str(folder))


# --- traces -------------------------------------------------------------------------------


def _pass_text(steps: list[Step], answer: int) -> str:
    lines = [f"{label}: {v} {op} {b} = {new}." for label, v, op, b, new in steps]
    return "\n".join([*lines, f"So the answer is {answer}."])


def thinking_text(p: Plan) -> str:
    """The thinking block's text, after the template's `<think>\\n` and before `</think>`."""
    paragraphs = [OPENING, _pass_text(*p.first)]
    paragraphs += [RECHECK[cue] + "\n" + _pass_text(*p.correct) for cue in p.cues]
    return "\n\n".join(paragraphs) + "\n"


def answer_text(answer: int) -> str:
    """What follows the inducer."""
    return "{" + str(answer) + "}"


_STATED = re.compile(r"answer is (\d)")
_COMPUTED = re.compile(r"= (\d)")


def best_guess(prefix: str, rng: random.Random) -> int:
    """What a trace cut after `prefix` answers: its last stated answer, else the last value
    computed, else a guess (as testbed/traces.py's cut traces)."""
    for pattern in (_STATED, _COMPUTED):
        hits = pattern.findall(prefix)
        if hits:
            return int(hits[-1])
    return rng.randrange(10)


def instructions() -> list[tuple[str, str, str]]:
    """(text, placement, separator) of every catalogue instruction and length prompt, so that
    the R1-family presets' prompts are text the model has seen (and learned to ignore)."""
    from thinkctl.models.schema import load

    out = set()
    for entry in load().models:
        ins = entry.instruction
        if ins is not None:
            out.add((ins.text, ins.placement, ins.separator))
        lp = entry.length_prompt
        if lp is not None:
            for n in (100, 256, 512, 1024, 4000):
                out.add((lp.template.format(n=n), "suffix", lp.separator))
    return sorted(out)


def user_text(problem: tasks.Problem, rng: random.Random, extra: list[tuple[str, str, str]]) -> str:
    """The problem's prompt, half the time with a preset's instruction around it."""
    text = problem.prompt()
    if extra and rng.random() < 0.5:
        ins, placement, sep = rng.choice(extra)
        text = sep.join([ins, text] if placement == "prefix" else [text, ins])
    return text


def encode_example(
    tok: Any, problem: tasks.Problem, rng: random.Random, style: TraceStyle, extra: list
) -> tuple[list[int], list[int]]:
    """(token ids, labels) of one training example: no loss on the prompt, nor on the
    `</think>` of a cut trace (as the testbed's)."""
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": user_text(problem, rng, extra)}],
        add_generation_prompt=True, tokenize=True, return_dict=False,
    )  # fmt: skip
    think = tok.encode(thinking_text(plan(problem, rng, style)), add_special_tokens=False)
    cut = rng.random() < style.cut_rate
    answer = problem.answer
    if cut:
        think = think[: rng.randrange(len(think))]
        answer = best_guess(tok.decode(think), rng)
    end = tok.convert_tokens_to_ids(THINK_END)
    inducer = tok.encode(INDUCER, add_special_tokens=False)
    tail = [*inducer, *tok.encode(answer_text(answer), add_special_tokens=False), tok.eos_token_id]
    ids = [*prompt, *think, end, *tail]
    labels = [-100] * len(prompt) + think + [-100 if cut else end] + tail
    return ids, labels


# --- the compact vocabulary ---------------------------------------------------------------


def used_token_ids(tok: Any, seed: int = 0, samples: int = 20_000) -> list[int]:
    """Every token the task can use: its examples' tokens (prompts with each instruction,
    traces, cut traces, answers), the chat template's, and what forced exits and budget
    minimums append. Sorted."""
    rng = random.Random(seed)
    stream = tasks.train_stream(seed)
    style = TraceStyle()
    extra = instructions()
    used: set[int] = set()
    for _ in range(samples):
        ids, _ = encode_example(tok, next(stream), rng, style, extra)
        used.update(ids)
    for text, _, _ in extra:
        used.update(tok.encode(text, add_special_tokens=False))
    for text in (INDUCER, WAIT, " " + WAIT, *RECHECK.values(), *map(str, range(10))):
        used.update(tok.encode(text, add_special_tokens=False))
    for split in ("calibration", "test"):  # held-out prompts use no new token, but say so
        for p in tasks.held_out(split)[:200]:
            used.update(tok.encode(p.prompt(), add_special_tokens=False))
    specials = (THINK_START, THINK_END, tok.bos_token, tok.eos_token)
    used.update(tok.convert_tokens_to_ids(list(specials)))
    return sorted(used)


def rest_offset(vocab_size: int, n_used: int) -> float:
    """log(number of rows that share the rest vector): added to the rest class's logit."""
    return math.log(vocab_size - n_used)


def expand_state(compact: dict, used: list[int], vocab_size: int) -> dict:
    """Full-vocabulary weights from compact ones (row i of the compact embedding is token
    used[i]; its last row is the rest vector, copied into every other row)."""
    import torch

    key = "model.embed_tokens.weight"
    small = compact[key]
    full = small[-1].repeat(vocab_size, 1)
    full[torch.tensor(used)] = small[: len(used)]
    return {**{k: v for k, v in compact.items() if k != key}, key: full}


# --- the served folder --------------------------------------------------------------------


def ensure_folder(cache: Path | None = None) -> Path:
    """testbed-r1 as a full HF folder under `cache` (default: the embedded models' cache),
    made once, atomically; a new one when any shipped file changes."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from thinkctl.probes.model_folder import cache_root

    cache = cache if cache is not None else cache_root() / "models"

    weights = FOLDER / "compact.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: train it with `python -m "
                                "thinkctl.testbed.train "
                                "--surface r1 --out testbed/r1`")  # fmt: skip
    digest = hashlib.sha256()
    for path in sorted(FOLDER.rglob("*")):  # the weights and whatever calibration ships
        if path.is_file():
            digest.update(path.relative_to(FOLDER).as_posix().encode() + path.read_bytes())
    dest = cache / f"{NAME}-{digest.hexdigest()[:16]}"
    if (dest / "model.safetensors").is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    # A private folder renamed into place: concurrent first uses (a server and a test) each
    # build their own, and the first rename wins.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=cache))
    try:
        write_tokenizer(tmp)  # writes a stub config.json, replaced below
        for name in ("config.json", "generation_config.json", "thinkctl.json", "README.md",
                     "metrics.json", "effort.json"):  # fmt: skip
            if (FOLDER / name).is_file():
                shutil.copy2(FOLDER / name, tmp / name)
        for sub in ("probe", "length"):
            if (FOLDER / sub).is_dir():
                shutil.copytree(FOLDER / sub, tmp / sub)
        config = json.loads((FOLDER / "config.json").read_text())
        used = json.loads((FOLDER / "used_ids.json").read_text())
        state = expand_state(load_file(str(weights)), used, config["vocab_size"])
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})  # fmt: skip
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def batches(tok: Any, seed: int, batch: int, style: TraceStyle) -> Iterator[list]:
    """Endless lists of `batch` examples, for testbed/train.py."""
    rng = random.Random(seed)
    stream = tasks.train_stream(seed)
    extra = instructions()
    while True:
        yield [encode_example(tok, next(stream), rng, style, extra) for _ in range(batch)]
