"""Train a testbed reasoning model from scratch, on CPU or GPU.

    python -m thinkctl.testbed.train --out testbed/model --seed 0   # the shipped testbed (Llama)
    python -m thinkctl.testbed.train --surface r1 --out testbed/r1  # testbed-r1 (testbed/r1.py)
    python -m thinkctl.testbed.train --out /tmp/tb --steps 200             # a quick smoke run

testbed-r1 trains on the compact vocabulary: the used tokens plus one rest class whose
logit carries + log(number of rest rows), exact for the full model (testbed/r1.py); the
run saves the compact weights and the used token ids.

Data is generated on the fly from the train stream (never a held-out problem), so a run
is fully determined by its seed. The loss covers only what the assistant writes (the
thinking trace, the end of thinking and the answer), not the prompt.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from thinkctl.testbed import r1, tasks, traces
from thinkctl.testbed.tokenizer import build_tokenizer


# --- the recipe ---------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    steps: int = 1500
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    # Model: head_dim 64, a size vLLM's CPU attention supports.
    hidden: int = 128
    layers: int = 4
    heads: int = 2
    intermediate: int = 384
    max_len: int = 512  # the longest trace (8 steps, 5 passes) is about 400 tokens
    mul_error: float = 0.3  # see traces.TraceStyle
    max_redundant: int = 3
    cut_rate: float = 0.2
    surface: str = "testbed"  # or "r1"


# testbed-r1's defaults: longer traces, a wider model (GQA like Qwen's), more steps.
R1_RECIPE = Recipe(steps=3000, lr=2e-3, hidden=256, layers=4, heads=4, intermediate=768,
                   max_len=1024, surface="r1")  # fmt: skip
R1_KV_HEADS = 2

# -------------------------------------------------------------------------------------


def lr_at(step: int, r: Recipe) -> float:
    """1) linear warm-up, 2) cosine decay to 10% of the peak."""
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    progress = (step - r.warmup) / max(1, r.steps - r.warmup)
    return r.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_model(r: Recipe, vocab_size: int, tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=r.hidden,
        intermediate_size=r.intermediate,
        num_hidden_layers=r.layers,
        num_attention_heads=r.heads,
        num_key_value_heads=r.heads,
        max_position_embeddings=r.max_len,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(config)


def encode_example(
    tok, problem: tasks.Problem, rng: random.Random, style
) -> tuple[list[int], list[int]]:
    """(token ids, labels): no loss on the prompt, nor on the `</think>` of a cut trace."""
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": problem.prompt()}],
        add_generation_prompt=True, tokenize=True, return_dict=False,
    )  # fmt: skip
    done = traces.completion(problem, rng, style)
    think_ids = (
        tok.encode(" ".join(done.thinking), add_special_tokens=False) if done.thinking else []
    )
    end_id = tok.convert_tokens_to_ids(traces.END_THINK)
    answer_ids = tok.encode(" ".join(done.answer), add_special_tokens=False) + [tok.eos_token_id]
    ids = [*prompt, *think_ids, end_id, *answer_ids]
    labels = [-100] * len(prompt) + think_ids + [-100 if done.cut else end_id] + answer_ids
    return ids, labels


def _examples(tok, r: Recipe, rng: random.Random):
    """Endless pools of examples, (ids, labels) each. The testbed's draw from `rng`, which
    also shuffles the batches (the shipped model's exact stream)."""
    style = traces.TraceStyle(r.mul_error, r.max_redundant, r.cut_rate)
    if r.surface == "r1":
        yield from r1.batches(tok, r.seed, r.batch * 8, style)
        return
    stream = tasks.train_stream(r.seed)
    while True:
        yield [encode_example(tok, next(stream), rng, style) for _ in range(r.batch * 8)]


def batches(tok, r: Recipe, pad_id: int):
    """Endless batches of similar-length examples (little padding), as (ids, labels)."""
    rng = random.Random(r.seed)
    for pool in _examples(tok, r, rng):
        pool.sort(key=lambda e: len(e[0]))
        chunks = [pool[i : i + r.batch] for i in range(0, len(pool), r.batch)]
        rng.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad_id)
            labels = torch.full((len(chunk), width), -100)
            for row, (seq, lab) in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                labels[row, : len(lab)] = torch.tensor(lab)
            yield ids, labels


def make_r1_model(r: Recipe, n_rows: int, tok):
    """testbed-r1 on its compact vocabulary (`n_rows` = used tokens + the rest row)."""
    from transformers import Qwen2ForCausalLM

    return Qwen2ForCausalLM(_r1_config(r, n_rows, tok))


def _r1_config(r: Recipe, vocab_size: int, tok):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=r.hidden, intermediate_size=r.intermediate,
        num_hidden_layers=r.layers, num_attention_heads=r.heads,
        num_key_value_heads=R1_KV_HEADS, max_position_embeddings=r.max_len,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip


class _Compact:
    """testbed-r1's vocabulary map and the rest class's loss (testbed/r1.py)."""

    def __init__(self, tok, r: Recipe) -> None:
        from thinkctl.testbed.qwen_tokenizers import VOCAB_SIZE

        self.used = r1.used_token_ids(tok, r.seed)
        self.rest = len(self.used)  # the rest row's index
        self.offset = r1.rest_offset(VOCAB_SIZE, len(self.used))
        self.index = torch.full((VOCAB_SIZE,), self.rest, dtype=torch.long)
        self.index[torch.tensor(self.used)] = torch.arange(len(self.used))

    def remap(self, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masked = labels == -100
        labels = self.index[labels.clamp(min=0)].masked_fill(masked, -100)
        return self.index[ids], labels

    def loss(self, model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logits[..., self.rest] += self.offset  # all rest rows' mass in one class
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
            ignore_index=-100,
        )  # fmt: skip


def train(r: Recipe, out: Path, device: str) -> dict:
    torch.manual_seed(r.seed)
    compact = None
    if r.surface == "r1":
        out.mkdir(parents=True, exist_ok=True)
        tok = r1.tokenizer()
        compact = _Compact(tok, r)
        model = make_r1_model(r, compact.rest + 1, tok).to(device)
        pad_id = tok.eos_token_id
    else:
        tok = build_tokenizer()
        model = make_model(r, len(tok), tok).to(device)
        pad_id = tok.pad_token_id
    params = list(model.parameters())
    groups = [  # no weight decay on norms
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": r.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=r.lr, betas=(0.9, 0.95))
    data = batches(tok, r, pad_id)
    started, losses = time.time(), []
    bar = tqdm(range(r.steps), desc="train", unit="step")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, r)
        ids, labels = next(data)
        mask = (ids != pad_id).long()  # r1 pads with EOS: masking an example's last input is moot
        if compact is not None:
            ids, labels = compact.remap(ids, labels)
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            if compact is not None:
                loss = compact.loss(model, ids, mask, labels)
            else:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    out.mkdir(parents=True, exist_ok=True)
    if compact is not None:
        _save_r1(model, compact, r, tok, out)
    else:
        model.to(torch.float32).save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
    log = {
        "recipe": asdict(r),
        "device": device,
        "train_seconds": round(time.time() - started, 1),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out / "training.json").write_text(json.dumps(log, indent=2))
    return log


def _save_r1(model, compact: _Compact, r: Recipe, tok, out: Path) -> None:
    """The compact weights, the used ids, and the full model's config (testbed/r1.py's
    `ensure_folder` expands them)."""
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    from thinkctl.testbed.qwen_tokenizers import VOCAB_SIZE

    state = {
        k: v.detach().to(torch.bfloat16).cpu().contiguous()
        for k, v in model.state_dict().items()
        if k != "lm_head.weight"
    }  # tied
    save_file(state, str(out / "compact.safetensors"), metadata={"format": "pt"})
    (out / "used_ids.json").write_text(json.dumps(compact.used) + "\n")
    config = _r1_config(r, VOCAB_SIZE, tok)
    config.architectures = ["Qwen2ForCausalLM"]
    config.dtype = "bfloat16"
    config.save_pretrained(out)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    GenerationConfig(**ids).save_pretrained(out)
    conventions = {"answer_inducer": r1.INDUCER, "wait_string": r1.WAIT}
    (out / "thinkctl.json").write_text(json.dumps(conventions, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--surface", choices=("testbed", "r1"), default="testbed")
    known, _ = p.parse_known_args(argv)
    base = R1_RECIPE if known.surface == "r1" else Recipe()
    for field, default in asdict(base).items():
        if field != "surface":
            p.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default)
    args = vars(p.parse_args(argv))
    out, device = args.pop("out"), args.pop("device")
    print(json.dumps(train(Recipe(**args), out, device), indent=2))


if __name__ == "__main__":
    main()
