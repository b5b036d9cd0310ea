"""Each controller alone, and three in one request, through HTTP on the testbed.

Every request carries its own seed, so these small-sample comparisons are deterministic
(the CPU seed fix makes a seeded request independent of what it is batched with).
"""

import asyncio
import statistics

import pytest

from tests.conftest import MODEL
from thinkctl.testbed import tasks

PROBLEMS = tasks.held_out("test")[:24]


async def run(aclient, temperature: float = 0.6, **thinkctl) -> list[tuple[bool, dict, str]]:
    async def one(i: int, p: tasks.Problem):
        r = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": p.prompt()}], max_tokens=450,
            temperature=temperature, seed=i, extra_body={"thinkctl": thinkctl} if thinkctl else None,
        )  # fmt: skip
        content = r.choices[0].message.content
        return tasks.is_correct(p, content), r.choices[0].model_extra["thinkctl"], content

    return await asyncio.gather(*(one(i, p) for i, p in enumerate(PROBLEMS)))


def mean_thinking(results) -> float:
    return statistics.mean(t["thinking_tokens"] for _, t, _ in results)


def accuracy(results) -> float:
    return sum(ok for ok, _, _ in results) / len(results)


@pytest.fixture(scope="module")
async def natural(aclient):
    return await run(aclient)


async def test_ts_above_one_stops_earlier_and_reports_it(aclient, natural):
    results = await run(aclient, ts={"strength": 100.0})
    assert mean_thinking(results) < 0.8 * mean_thinking(natural)
    assert all(t["controllers"] == ["ts"] for _, t, _ in results)
    assert sum(t["exit_reason"] == "ts" for _, t, _ in results) >= len(results) // 2
    assert all(tasks.extract_answer(c) is not None for _, _, c in results)


async def test_ts_below_one_thinks_longer(aclient, natural):
    results = await run(aclient, ts={"strength": 0.1})
    assert mean_thinking(results) > 1.3 * mean_thinking(natural)
    assert all(t["exit_reason"] in ("natural", "answer_reserve") for _, t, _ in results)


async def test_ts_temperature_form_with_t_below_one_stops_earlier(aclient, natural):
    # The end token's logit is positive where the model considers stopping, so z/T grows.
    results = await run(aclient, ts={"strength": 0.5, "form": "temperature"})
    assert mean_thinking(results) < mean_thinking(natural)


async def test_top_h_keeps_high_temperature_sampling_accurate(aclient):
    plain = await run(aclient, temperature=2.0)
    truncated = await run(aclient, temperature=2.0, top_h={"alpha": 0.4})
    assert accuracy(truncated) >= accuracy(plain) + 0.15
    assert all(t["controllers"] == ["top_h"] for _, t, _ in truncated)


async def test_a_stack_of_three_composes(aclient, natural):
    results = await run(aclient, max_thinking_tokens=60, ts={"strength": 100.0},
                        top_h={"alpha": 0.4})  # fmt: skip
    for _, trace, content in results:
        assert trace["controllers"] == ["budget", "ts", "top_h"]
        assert trace["thinking_tokens"] <= 60
        assert trace["exit_reason"] in ("budget", "ts")
        assert tasks.extract_answer(content) is not None  # thinking closed, answer well-formed
    assert mean_thinking(results) < mean_thinking(natural)
    assert {t["exit_reason"] for _, t, _ in results} == {"budget", "ts"}
