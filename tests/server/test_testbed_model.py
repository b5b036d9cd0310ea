"""The shipped testbed model, served: it thinks, closes thinking itself and answers right."""

import asyncio
import statistics

from tests.conftest import MODEL
from thinkctl.testbed import tasks


async def test_testbed_answers_held_out_problems_and_thinks_longer_when_harder(aclient):
    test = tasks.held_out("test")
    easy = [p for p in test if p.difficulty == 1][:15]
    hard = [p for p in test if p.difficulty == 7][:15]

    async def solve(p: tasks.Problem):
        r = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": p.prompt()}],
            max_tokens=450, temperature=0.6, seed=0,
        )  # fmt: skip
        trace = r.choices[0].model_extra["thinkctl"]
        return tasks.is_correct(p, r.choices[0].message.content), trace

    results = await asyncio.gather(*(solve(p) for p in easy + hard))
    assert sum(ok for ok, _ in results) >= 0.8 * len(results)
    assert all(t["exit_reason"] == "natural" for _, t in results)
    tokens = [t["thinking_tokens"] for _, t in results]
    assert statistics.mean(tokens[len(easy) :]) > 2 * statistics.mean(tokens[: len(easy)])
