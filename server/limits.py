"""Admission limits: requests beyond capacity are refused at once, never queued forever.

`Admission` lets `max_concurrent` requests hold the engine and up to `max_queued` more wait
for a slot (at most `queue_timeout_s`); anything beyond is a 429, a wait that runs out a
503, both with `Retry-After`. vLLM's own scheduler still batches what is admitted; these
caps bound what a burst can pile up in front of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from thinkctl.errors import EngineUnavailable, TooManyRequests


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int | None = None  # None: the model's context
    max_completion_tokens: int | None = None  # cap on max_tokens (and its default)
    max_n: int = 16
    max_concurrent: int = 256
    max_queued: int = 1024
    queue_timeout_s: float = 30.0
    request_timeout_s: float | None = None  # per request, queueing excluded
    retry_after_s: int = 1


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.max_concurrent)
        self._waiting = 0
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        lim = self.limits
        retry = {"Retry-After": str(lim.retry_after_s)}
        if not self._slots.locked():
            # A free slot is taken without suspending, so the requests that arrive in the
            # same instant see it gone (wait_for would acquire in a separate task, later).
            await self._slots.acquire()
        elif self._waiting >= lim.max_queued:
            raise TooManyRequests(
                f"The server is at capacity ({lim.max_concurrent} running, {lim.max_queued} "
                "queued); retry later.", None, "server_overloaded", headers=retry,
            )  # fmt: skip
        else:
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), lim.queue_timeout_s)
            except TimeoutError as exc:
                raise EngineUnavailable(
                    f"No capacity within {lim.queue_timeout_s:g} s; retry later.", None,
                    "queue_timeout", headers=retry,
                ) from exc  # fmt: skip
            finally:
                self._waiting -= 1
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._slots.release()
