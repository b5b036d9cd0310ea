"""The testbed's chain arithmetic as an RL task for recipes/dler.py, and a quick check.

Training prompts come from `testbed.tasks.train_stream(seed)`, which never yields a
calibration or test problem. The quick check samples the test split with transformers'
`generate` so a GPU run can report progress without vLLM; the shipped metrics come from
`python -m thinkctl.testbed.evaluate` (vLLM) instead.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

from thinkctl.testbed import tasks
from thinkctl.testbed.traces import END_THINK


def dataset(n: int, seed: int):
    """n training problems as TRL rows: prompt (chat messages), answer, difficulty."""
    from datasets import Dataset

    problems = itertools.islice(tasks.train_stream(seed), n)
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": p.prompt()}], "answer": str(p.answer),
         "difficulty": p.difficulty}
        for p in problems
    ])  # fmt: skip


def check(answer_text: str, reference: str) -> bool:
    """The text after `</think>` answers `\\boxed{ d }` with the reference digit."""
    return tasks.extract_answer(answer_text) == int(reference)


def quick_eval(folder: Path, n: int, temperature: float = 0.6, seed: int = 0) -> dict:
    """Accuracy and mean thinking tokens on the first n test problems (transformers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    set_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    problems = tasks.held_out("test")[:n]
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p.prompt()}],
                                add_generation_prompt=True, tokenize=False)
        for p in problems
    ]  # fmt: skip
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                             max_new_tokens=450, pad_token_id=tok.pad_token_id)  # fmt: skip
    end = tok.convert_tokens_to_ids(END_THINK)
    thinking, correct = [], []
    by_difficulty: dict[int, list[int]] = {}
    for p, ids in zip(problems, out[:, enc.input_ids.shape[1] :].tolist(), strict=True):
        k = ids.index(end) if end in ids else len(ids)
        thinking.append(k)
        by_difficulty.setdefault(p.difficulty, []).append(k)
        correct.append(end in ids and tasks.is_correct(p, tok.decode(ids[k + 1 :])))
    return {
        "n": n, "temperature": temperature, "engine": "transformers generate",
        "accuracy": round(sum(correct) / n, 4),
        "mean_thinking_tokens": round(statistics.mean(thinking), 1),
        "mean_thinking_tokens_by_difficulty": {
            str(d): round(statistics.mean(v), 1) for d, v in sorted(by_difficulty.items())
        },
    }  # fmt: skip
