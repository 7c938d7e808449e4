"""Run a blocking generator on a worker thread and consume it asynchronously."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

from inference.engines.base import EngineError

T = TypeVar("T")
_END = object()


async def iterate_in_thread(
    executor: ThreadPoolExecutor,
    produce: Callable[[], Iterator[T]],
    cancel: threading.Event,
) -> AsyncGenerator[T, None]:
    """Yield what ``produce()`` yields; on exit, cancel it and wait until its thread is done.

    Waiting matters: the model is only free for the next request once the
    worker has actually stopped.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def work() -> None:
        try:
            for item in produce():
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if cancel.is_set():
                    break
        except (RuntimeError, ValueError, OSError) as exc:  # llama.cpp failures, for the consumer
            loop.call_soon_threadsafe(queue.put_nowait, EngineError(str(exc)))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    future = loop.run_in_executor(executor, work)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, EngineError):
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancel.set()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({future})
