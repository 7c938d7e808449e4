"""Run blocking store calls off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


async def off_loop(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)
