"""The DLER recipe's pieces on hand-made values, its TRL configuration, and one real
rollout batch through DlerTrainer on the testbed (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from thinkctl.models import embedded
from thinkctl.recipes import dler, testbed_task


def test_truncated_or_over_budget_completions_get_nothing_even_when_right():
    rewards = dler.truncation_rewards(
        correct=[True, True, True, False, True],
        lengths=[50, 80, 81, 40, 60],
        finished=[True, False, True, True, True],
        budgets=[80, 80, 80, 80, 59],
    )
    # right / cut at the budget / over it / wrong / over its own per-prompt budget
    assert rewards == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_reward_function_checks_only_after_thinking_and_needs_the_end_of_sequence():
    eos = 3
    reward = dler.make_reward(testbed_task.check, "</think>", {eos}, budget=10)
    completions = [
        [{"role": "assistant", "content": "A : 1 + 1 = 2 . </think> \\boxed{ 2 }"}],
        [{"role": "assistant", "content": "A : 1 + 1 = 2 . </think> \\boxed{ 2 }"}],
        [{"role": "assistant", "content": "so answer \\boxed{ 2 } without closing"}],
        [{"role": "assistant", "content": "</think> \\boxed{ 7 }"}],
    ]
    ids = [[5, 6, eos], [5, 6, 7], [5, eos], [5, eos]]
    got = reward(completions=completions, completion_ids=ids, answer=["2", "2", "2", "2"])
    assert got == [1.0, 0.0, 0.0, 0.0]  # ok / truncated / thinking never closed / wrong
    per_prompt = reward(completions=completions[:1], completion_ids=ids[:1], answer=["2"],
                        budget=[2])  # fmt: skip
    assert per_prompt == [0.0]  # 3 tokens > its budget of 2


def test_groups_whose_rewards_are_all_equal_are_dropped():
    rewards = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0])
    keep = dler.informative_groups(rewards, group=4)
    assert keep.tolist() == [False] * 8 + [True] * 8


def test_advantages_use_the_group_mean_and_the_batch_std_of_kept_groups():
    rewards = torch.tensor([1.0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0])
    keep = dler.informative_groups(rewards, group=4)
    adv = dler.batch_advantages(rewards, group=4, keep=keep)
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75])
    expected = centred / (centred.std() + 1e-4)
    assert torch.allclose(adv[4:], expected, atol=1e-6)
    assert adv[:4].tolist() == [0.0] * 4  # the all-1 group: no signal
    # One scale for the whole batch: per-group std would make the lone winner and the
    # lone loser equally strong; here they are too, but not unit-scaled per group.
    assert torch.isclose(adv[4], -adv[11])
    group_std = rewards[4:8].std()
    assert not torch.isclose(adv[4], centred[0] / group_std)


def test_nothing_kept_means_no_update():
    rewards = torch.zeros(8)
    keep = dler.informative_groups(rewards, group=4)
    assert not keep.any()
    assert dler.batch_advantages(rewards, 4, keep).abs().sum() == 0


def test_trl_is_configured_to_dlers_choices(tmp_path):
    r = dler.Recipe(budget=123, prompts=8, generations=4, updates=2)
    c = dler.grpo_config(r, tmp_path)
    assert (c.epsilon, c.epsilon_high) == (0.2, 0.28)
    assert c.scale_rewards == "batch" and c.loss_type == "dapo"
    assert c.mask_truncated_completions is False  # the penalty must reach the loss
    assert c.max_completion_length == 123 and c.num_generations == 4
    assert c.per_device_train_batch_size * c.steps_per_generation == 8 * 4
    assert c.beta == 5e-4 and c.temperature == 1.0


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """One rollout batch of the real trainer: 4 easy prompts x 8 samples, budget 60, from
    the base testbed (whose 1-3 re-checks put some samples over the budget, some not)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded.ensure(embedded.TESTBED)
    r = dler.Recipe(budget=60, rounds=1, prompts=4, generations=8, updates=1)
    data = testbed_task.dataset(200, seed=0).filter(lambda x: x["difficulty"] == 1)
    data = data.select(range(r.prompts))
    tok = AutoTokenizer.from_pretrained(folder)
    reward = dler.make_reward(testbed_task.check, "</think>", {tok.eos_token_id}, r.budget)
    trainer = dler._trainer_class()(
        model=AutoModelForCausalLM.from_pretrained(folder), reward_funcs=reward,
        args=dler.grpo_config(r, tmp_path_factory.mktemp("trl")), train_dataset=data, processing_class=tok,
    )  # fmt: skip
    trainer.model.train()
    inputs = [row for row in data for _ in range(r.generations)]
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(inputs)
    return trainer, out


def test_dropped_groups_leave_the_loss_and_kept_ones_are_batch_normalised(rollout):
    trainer, out = rollout
    rewards = trainer._dler_rewards[:, 0]
    keep = dler.informative_groups(rewards, 8)
    lengths = out["completion_mask"].sum(dim=1)
    assert (lengths[~keep] == 0).all() and (lengths[keep] > 0).all()
    assert out["num_items_in_batch"] == out["completion_mask"].sum()
    assert torch.allclose(out["advantages"], dler.batch_advantages(rewards, 8, keep))
    assert trainer._metrics["train"]["dler/kept_groups"][-1] == keep.float().mean().item()
    # Truncated samples (no end of sequence within the budget) all scored 0.
    ids = out["completion_ids"]
    eos = trainer.processing_class.eos_token_id
    cut = [not (row == eos).any() for row in ids]
    assert all(rewards[i] == 0 for i, c in enumerate(cut) if c)
    assert any(cut) and rewards.sum() > 0, "these seeds gave no mix to test"


def test_a_jsonl_task_becomes_chat_prompts_checked_by_math_equivalence(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "What is 1/2 as a decimal?", "answer": "0.5"}\n')
    data, check = dler._jsonl_task(path)
    assert data[0]["prompt"] == [{"role": "user", "content": "What is 1/2 as a decimal?"}]
    assert check(" so \\boxed{\\frac{1}{2}}", data[0]["answer"])
    assert not check(" so \\boxed{2}", data[0]["answer"])
