"""A bounded, first-come-first-served queue in front of the model's slots.

Past ``max_queue`` waiting requests, ``acquire`` fails at once so the server
can answer 503 with ``Retry-After`` and the gateway can fail over, instead
of letting requests pile up behind a busy model.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from p2.core.openai import QueueFull


class Admission:
    """``slots`` requests run at once; up to ``max_queue`` more wait, in arrival order."""

    def __init__(self, slots: int, max_queue: int) -> None:
        self._free = slots
        self._max_queue = max_queue
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.in_use = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if need be; ``QueueFull`` if the line is full."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self.in_use += 1
            return
        if len(self._waiters) >= self._max_queue:
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_over()  # we were given the slot as we left: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
