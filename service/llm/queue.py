"""A bounded queue in front of the LLM: at most `concurrency` calls run, at most `queue_size` wait.
Past that, callers get `Overloaded` with a Retry-After at once, instead of an unbounded pile-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import Overloaded


class LLMGate:
    def __init__(self, concurrency: int, queue_size: int, seconds_per_call: float = 5.0) -> None:
        self._sem = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._queue_size = queue_size
        self._seconds_per_call = seconds_per_call
        self.waiting = 0
        self.running = 0

    def check(self) -> None:
        """Raise `Overloaded` now if a caller would be turned away: lets a route refuse before it
        starts work (retrieval) or a response (a stream's 200)."""
        if self.running >= self._concurrency and self.waiting >= self._queue_size:
            retry = max(1, round(self._seconds_per_call * (self.waiting + 1) / self._concurrency))
            raise Overloaded("the model is busy and its queue is full; retry later", retry_after=retry)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()
