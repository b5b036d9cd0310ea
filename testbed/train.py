"""Train the testbed reasoning model from scratch (a small Llama), on CPU or GPU.

    python -m testbed.train --out testbed/model --seed 0          # the shipped recipe
    python -m testbed.train --out /tmp/tb --steps 200             # a quick smoke run

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

from testbed import tasks, traces
from testbed.tokenizer import build_tokenizer


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


def batches(tok, r: Recipe):
    """Endless batches of similar-length examples (little padding), as (ids, labels)."""
    rng = random.Random(r.seed)
    stream = tasks.train_stream(r.seed)
    style = traces.TraceStyle(r.mul_error, r.max_redundant, r.cut_rate)
    while True:
        pool = [encode_example(tok, next(stream), rng, style) for _ in range(r.batch * 8)]
        pool.sort(key=lambda e: len(e[0]))
        chunks = [pool[i : i + r.batch] for i in range(0, len(pool), r.batch)]
        rng.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id)
            labels = torch.full((len(chunk), width), -100)
            for row, (seq, lab) in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                labels[row, : len(lab)] = torch.tensor(lab)
            yield ids, labels


def train(r: Recipe, out: Path, device: str) -> dict:
    torch.manual_seed(r.seed)
    tok = build_tokenizer()
    model = make_model(r, len(tok), tok).to(device)
    params = list(model.parameters())
    groups = [  # no weight decay on norms
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": r.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=r.lr, betas=(0.9, 0.95))
    data = batches(tok, r)
    started, losses = time.time(), []
    bar = tqdm(range(r.steps), desc="train", unit="step")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, r)
        ids, labels = next(data)
        ids, labels = ids.to(device), labels.to(device)
        mask = (ids != tok.pad_token_id).long()
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    out.mkdir(parents=True, exist_ok=True)
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for field, default in asdict(Recipe()).items():
        p.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default)
    args = vars(p.parse_args(argv))
    out, device = args.pop("out"), args.pop("device")
    print(json.dumps(train(Recipe(**args), out, device), indent=2))


if __name__ == "__main__":
    main()
