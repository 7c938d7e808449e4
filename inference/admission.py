"""A bounded, first-come-first-served queue in front of the model's slots.

A request takes as many slots as it asks choices (``n``). Past ``max_queue``
waiting requests, ``acquire`` fails at once so the server can answer 503 with
``Retry-After`` and the gateway can fail over, instead of letting requests pile
up behind a busy model.
"""

from __future__ import annotations

import asyncio
import collections

from p2.core.openai import QueueFull


class Admission:
    """``slots`` slots in all; up to ``max_queue`` requests wait, in arrival order."""

    def __init__(self, slots: int, max_queue: int) -> None:
        self.slots = slots
        self._free = slots
        self._max_queue = max_queue
        self._waiters: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()
        self.in_use = 0  # requests holding slots

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, weight: int = 1) -> None:
        """Take ``weight`` slots, waiting in line if need be; ``QueueFull`` if the line is
        full."""
        if self._free >= weight and not self._waiters:
            self._free -= weight
            self.in_use += 1
            return
        if len(self._waiters) >= self._max_queue:
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (waiter, weight)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._free += weight  # we were given the slots as we left: pass them on
            else:
                self._waiters.remove(entry)
            self._hand_over()
            raise
        self.in_use += 1

    def release(self, weight: int = 1) -> None:
        self.in_use -= 1
        self._free += weight
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters:
            waiter, weight = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self._free < weight:
                return
            self._waiters.popleft()
            self._free -= weight
            waiter.set_result(None)
