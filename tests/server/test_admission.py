"""The admission queue alone, with asyncio and no engine."""

import asyncio

import pytest

from thinkctl.errors import EngineUnavailable, TooManyRequests
from thinkctl.server.limits import Admission, Limits


async def hold(adm: Admission, seconds: float) -> str:
    async with adm.slot():
        await asyncio.sleep(seconds)
    return "ok"


async def test_running_queued_and_refused():
    adm = Admission(Limits(max_concurrent=2, max_queued=1, queue_timeout_s=5))
    results = await asyncio.gather(*(hold(adm, 0.1) for _ in range(5)), return_exceptions=True)
    assert results.count("ok") == 3
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(refused) == 2 and refused[0].headers == {"Retry-After": "1"}
    assert await hold(adm, 0) == "ok"  # every slot came back


async def test_a_wait_that_runs_out_is_a_503():
    adm = Admission(Limits(max_concurrent=1, max_queued=4, queue_timeout_s=0.05))
    first = asyncio.ensure_future(hold(adm, 0.3))
    await asyncio.sleep(0)
    with pytest.raises(EngineUnavailable) as exc:
        await hold(adm, 0)
    assert exc.value.code == "queue_timeout" and "Retry-After" in exc.value.headers
    assert await first == "ok"


async def test_it_counts_running_and_queued_requests():
    """What a shutdown reports draining (server/draining.py)."""
    adm = Admission(Limits(max_concurrent=2, max_queued=4, queue_timeout_s=5))
    held = [asyncio.ensure_future(hold(adm, 0.2)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert (adm.running, adm.waiting) == (2, 1)
    await asyncio.gather(*held)
    assert (adm.running, adm.waiting) == (0, 0)
