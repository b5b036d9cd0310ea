"""DLER-style RL for concise reasoning, on TRL's GRPO trainer.

    python -m thinkctl.recipes.dler --model testbed/model --task testbed --budget 80 --out OUT
    python -m thinkctl.recipes.dler --model PATH --data train.jsonl --budget 4000 --bf16 --out OUT

DLER ("Doing Length pEnalty Right", arXiv 2510.15110) shortens thinking with the
simplest length penalty and four optimisation choices:

1. truncation penalty: a completion cut at the length budget (it never wrote the end of
   sequence) gets reward 0; a finished one gets its correctness (1 or 0);
2. batch-wise reward normalisation: advantage = reward - its group's mean, divided by the
   standard deviation over the whole batch, not per group;
3. a higher upper clip: PPO ratio clipped to [1 - 0.2, 1 + 0.28];
4. dynamic sampling: groups whose rewards are all equal (all 0 or all 1) are dropped.

Also from DLER's public config: token-mean loss, KL loss 5e-4, rollout temperature 1.0,
16 rollouts per prompt, 8 updates per rollout batch, constant learning rate.

TRL's GRPOConfig expresses 1 (`max_completion_length` = the budget, plus the reward
below), 2 (`scale_rewards="batch"`), 3 (`epsilon`, `epsilon_high`), the token-mean loss
(`loss_type="dapo"`) and keeps truncated completions in the loss
(`mask_truncated_completions=False`: masking them would cancel the penalty). It has no
filter for equal-reward groups, so `DlerTrainer` adds it in one override: it masks those
groups out of the loss and renormalises the rest over the kept groups only. Unlike DAPO
it does not sample more prompts to refill the batch; the batch just shrinks.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from thinkctl.models.resolve import resolve
from thinkctl.probes import model_folder

Checker = Callable[[str, str], bool]  # (completion text, reference answer) -> correct


# --- the recipe ---------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    budget: int = 80  # completion tokens (thinking + answer + end of sequence)
    rounds: int = 60  # rollout batches
    prompts: int = 64  # prompts per rollout batch
    generations: int = 16  # rollouts per prompt
    updates: int = 8  # optimiser steps per rollout batch
    lr: float = 1e-4
    beta: float = 5e-4  # KL loss coefficient
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    temperature: float = 1.0
    seed: int = 0
    bf16: bool = False


# --- the DLER pieces, free of TRL so they can be tested on hand-made values -----------
def truncation_rewards(
    correct: Sequence[bool], lengths: Sequence[int], finished: Sequence[bool],
    budgets: Sequence[int],
) -> list[float]:  # fmt: skip
    """Correctness, or 0 for a completion that was cut (never finished) or is over budget."""
    return [
        float(ok and done and n <= b)
        for ok, n, done, b in zip(correct, lengths, finished, budgets, strict=True)
    ]


def informative_groups(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """Per completion: does its group hold different rewards? (Dynamic sampling keeps those.)"""
    grouped = rewards.view(-1, group)
    varied = (grouped.max(dim=1).values - grouped.min(dim=1).values) > 0
    return varied.repeat_interleave(group)


def batch_advantages(rewards: torch.Tensor, group: int, keep: torch.Tensor) -> torch.Tensor:
    """Group-mean baseline, scaled by the batch's standard deviation over kept groups.

    Dropped completions get advantage 0. (DLER's verl recipe whitens the group-centred
    rewards over the batch, `reinforce_plus_plus_baseline`; the mean of centred rewards is
    already 0, so only the scale remains.)
    """
    centred = rewards - rewards.view(-1, group).mean(dim=1).repeat_interleave(group)
    if keep.sum() < 2:
        return torch.zeros_like(rewards)
    scale = centred[keep].std()
    return torch.where(keep, centred / (scale + 1e-4), torch.zeros_like(rewards))


def after_thinking(text: str, end_think: str) -> str | None:
    """The answer part of a completion, or None when thinking never closed."""
    head, sep, tail = text.rpartition(end_think)
    return tail if sep else None


def make_reward(checker: Checker, end_think: str, eos_ids: set[int], budget: int):
    """A TRL reward function: DLER's truncation penalty on top of `checker`.

    Dataset columns: `answer` (reference) and optionally `budget` (per-prompt budget in
    completion tokens, e.g. for difficulty-aware truncation; default: the global one).
    """

    def dler_truncation(completions, completion_ids, answer, **kwargs):
        budgets = kwargs.get("budget") or [budget] * len(completions)
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        answers = [after_thinking(t, end_think) for t in texts]
        correct = [a is not None and checker(a, ref)
                   for a, ref in zip(answers, answer, strict=True)]  # fmt: skip
        finished = [bool(ids) and ids[-1] in eos_ids for ids in completion_ids]
        return truncation_rewards(correct, [len(i) for i in completion_ids], finished, budgets)

    return dler_truncation


# --- TRL --------------------------------------------------------------------------
def _trainer_class():
    from trl import GRPOTrainer

    class DlerTrainer(GRPOTrainer):
        """GRPOTrainer plus DLER's dynamic sampling (see the module docstring)."""

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._dler_rewards = rewards  # all processes' rows, before TRL normalises them
            return rewards

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            mode = "train" if self.model.training else "eval"
            group = self.num_generations if mode == "train" else self.num_generations_eval
            weights = self.reward_weights.to(self._dler_rewards.device)
            rewards = (self._dler_rewards * weights).nansum(dim=1)
            keep = informative_groups(rewards, group)
            advantages = batch_advantages(rewards, group, keep)
            mask = out["completion_mask"]
            n, rank = mask.size(0), self.accelerator.process_index
            local = slice(rank * n, (rank + 1) * n)
            out["advantages"] = advantages[local].to(mask.device)
            mask = mask * keep[local].to(mask.device).unsqueeze(1)
            out["completion_mask"] = mask
            out["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
            self._metrics[mode]["dler/kept_groups"].append(keep.float().mean().item())
            return out

    return DlerTrainer


def grpo_config(r: Recipe, scratch: Path):
    from trl import GRPOConfig

    per_update = r.prompts * r.generations // r.updates
    return GRPOConfig(
        output_dir=str(scratch),
        seed=r.seed, data_seed=r.seed,
        learning_rate=r.lr, lr_scheduler_type="constant", warmup_steps=0,
        max_steps=r.rounds * r.updates,
        per_device_train_batch_size=per_update,
        gradient_accumulation_steps=1,
        steps_per_generation=r.updates,
        num_iterations=1,
        num_generations=r.generations,
        max_completion_length=r.budget,  # generation stops here: the truncation
        temperature=r.temperature, top_p=1.0, top_k=0,
        beta=r.beta,
        epsilon=r.epsilon, epsilon_high=r.epsilon_high,
        scale_rewards="batch",
        loss_type="dapo",  # token-mean over the batch
        mask_truncated_completions=False,  # truncated completions must feel their 0
        bf16=r.bf16,
        logging_steps=r.updates,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )  # fmt: skip


def _stop_after(seconds: float):
    """A callback that ends training once `seconds` have passed (0: never)."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.deadline = time.time() + seconds

        def on_step_end(self, args, state, control, **kwargs):
            if seconds and time.time() > self.deadline:
                control.should_training_stop = True

    return StopAfter()


def train(
    model_path: Path, dataset, checker: Checker, r: Recipe, out: Path,
    end_think: str | None = None, max_seconds: float = 0,
) -> dict:  # fmt: skip
    """Run the recipe on `dataset` (rows: prompt = chat messages, answer) and save to `out`."""
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(r.seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    # The model folder's end of thinking (probes/model_folder.py) unless one is given.
    end_think = model_folder.conventions(model_path, flags={"think_end": end_think}).think_end
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    eos = model.generation_config.eos_token_id
    eos_ids = {tok.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
    reward = make_reward(checker, end_think, eos_ids, r.budget)
    scratch = tempfile.mkdtemp(prefix="dler-")  # TRL's output_dir; nothing is saved there
    trainer = _trainer_class()(
        model=model, reward_funcs=reward, args=grpo_config(r, Path(scratch)),
        train_dataset=dataset, processing_class=tok, callbacks=[_stop_after(max_seconds)],
    )  # fmt: skip
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    out.mkdir(parents=True, exist_ok=True)
    trainer.model.config.use_cache = True  # TRL turns it off for training
    trainer.model.to(torch.float32).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return {
        "recipe": asdict(r),
        "base_model": str(model_path),
        "device": str(trainer.accelerator.device),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "train_seconds": round(seconds, 1),
        "rounds_done": trainer.state.global_step // r.updates,
        "log": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            for row in trainer.state.log_history
        ],
    }


def _jsonl_task(path: Path):
    """Rows {"prompt": user message, "answer": reference}; checked with math-verify."""
    from datasets import Dataset

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    data = Dataset.from_list([
        {"prompt": [{"role": "user", "content": x["prompt"]}], "answer": str(x["answer"])}
        for x in rows
    ])  # fmt: skip

    def boxed(text: str, answer: str) -> bool:
        from math_verify import parse, verify

        return bool(verify(parse("\\boxed{" + answer + "}"), parse(text)))

    return data, boxed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        required=True,
        help="a causal LM: a folder, an embedded name or a hub id (models/resolve.py)",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=["testbed"], help="a built-in task")
    src.add_argument("--data", type=Path, help="JSONL of {prompt, answer}")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--end-think", help="Default: the model folder's thinkctl.json, else "
                   f"{model_folder.THINK_END}.")  # fmt: skip
    p.add_argument("--eval-n", type=int, default=0, help="testbed: quick test-split check after")
    p.add_argument("--max-seconds", type=float, default=0, help="stop training after this long")
    for field, default in asdict(Recipe()).items():
        flag = f"--{field.replace('_', '-')}"
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true")
        else:
            p.add_argument(flag, type=type(default), default=default)
    args = vars(p.parse_args(argv))
    model = resolve(args.pop("model")).folder
    task, data_path = args.pop("task"), args.pop("data")
    out, end_think, eval_n = args.pop("out"), args.pop("end_think"), args.pop("eval_n")
    max_seconds = args.pop("max_seconds")
    recipe = Recipe(**args)
    if task == "testbed":
        from thinkctl.recipes import testbed_task

        dataset = testbed_task.dataset(recipe.rounds * recipe.prompts, recipe.seed)
        checker = testbed_task.check
    else:
        dataset, checker = _jsonl_task(data_path)
    log = train(model, dataset, checker, recipe, out, end_think, max_seconds)
    log["command"] = "python -m thinkctl.recipes.dler " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    if task == "testbed":
        settings = model / model_folder.SETTINGS_FILE
        if settings.is_file():  # the trained model keeps the base's conventions
            (out / model_folder.SETTINGS_FILE).write_text(settings.read_text())
        if eval_n:
            log["quick_eval"] = testbed_task.quick_eval(out, eval_n)
    (out / "training.json").write_text(json.dumps(log, indent=2) + "\n")
    print(json.dumps({k: v for k, v in log.items() if k != "log"}, indent=2))


if __name__ == "__main__":
    main()
