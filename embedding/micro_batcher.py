"""Dynamic micro-batching: inputs of concurrent requests share model calls.

Requests put their tokenized inputs on one queue. Each worker (one per model
replica) takes what is waiting, after a short window when it would otherwise
run a small batch, up to ``max_batch`` inputs and at most its share when other
workers are idle; it computes the batch in its own thread so the event loop
stays free, and hands each request its rows back. While batches compute the
next ones accumulate, so load itself makes batches bigger.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from embedding.encoders.base import EncoderError, Vectors
from embedding.metrics import EmbeddingMetrics
from embedding.tokenizer import Tokenized
from p2.core.openai import QueueFull

log = logging.getLogger("p2.embedding")

Compute = Callable[[Sequence[Tokenized]], Vectors]


class BatcherClosed(Exception):
    """The batcher was shut down, or a batch was abandoned."""


def _report_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a batch worker stopped", exc_info=task.exception())


@dataclass
class _Item:
    tokens: Tokenized
    future: asyncio.Future[Vectors]


class MicroBatcher:
    """One queue, one worker per ``computes`` entry (each called from its own thread)."""

    def __init__(
        self,
        computes: Sequence[Compute],
        *,
        max_batch: int,
        wait_seconds: float,
        max_queue: int,
        metrics: EmbeddingMetrics,
    ) -> None:
        if not computes:
            raise ValueError("MicroBatcher needs at least one compute function")
        self._computes = tuple(computes)
        self._max_batch = max_batch
        self._wait = wait_seconds
        self._max_queue = max_queue
        self._metrics = metrics
        self._queue: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None] | None] = [None] * len(self._computes)
        self._executors = [
            ThreadPoolExecutor(1, thread_name_prefix=f"embedding-batch-{i}")
            for i in range(len(self._computes))
        ]
        self._busy = 0
        self._closed = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def embed(self, items: Sequence[Tokenized]) -> Vectors:
        """Vectors for ``items`` in order, computed together with other requests' inputs.

        ``QueueFull`` if they would put more than ``max_queue`` inputs in the queue.
        """
        if self._closed:
            raise BatcherClosed("the embedding service is shutting down")
        if len(self._queue) + len(items) > self._max_queue:
            raise QueueFull
        wakeup = self._ensure_workers()
        loop = asyncio.get_running_loop()
        queued = [_Item(tokens, loop.create_future()) for tokens in items]
        self._queue.extend(queued)
        wakeup.set()
        try:
            rows = await asyncio.gather(*(item.future for item in queued))
        finally:
            for item in queued:
                item.future.cancel()  # a gone client's inputs are skipped
        return np.stack(rows)

    async def aclose(self) -> None:
        self._closed = True
        tasks = [task for task in self._tasks if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail(list(self._queue), BatcherClosed("the embedding service is shutting down"))
        self._queue.clear()
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_workers(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        for index, task in enumerate(self._tasks):
            if task is None or task.done():
                if task is not None:
                    log.error("batch worker %d had stopped; restarting it", index)
                new = asyncio.create_task(self._run(index), name=f"embedding-batcher-{index}")
                new.add_done_callback(_report_stop)
                self._tasks[index] = new
        return self._wakeup

    async def _run(self, index: int) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            while not self._queue:
                wakeup.clear()
                await wakeup.wait()
            if len(self._queue) < self._max_batch and self._wait > 0:
                await asyncio.sleep(self._wait)
            batch = self._take()
            if batch:
                await self._process(index, batch)

    def _take(self) -> list[_Item]:
        """Up to ``max_batch`` live items, and no more than a fair share among idle workers."""
        idle = max(1, len(self._computes) - self._busy)
        share = min(self._max_batch, math.ceil(len(self._queue) / idle))
        batch: list[_Item] = []
        while self._queue and len(batch) < share:
            item = self._queue.popleft()
            if not item.future.done():
                batch.append(item)
        return batch

    async def _process(self, index: int, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        tokens = [item.tokens for item in batch]
        started = time.perf_counter()
        self._busy += 1
        try:
            vectors = await loop.run_in_executor(
                self._executors[index], self._computes[index], tokens
            )
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
            self._metrics.batch_inputs.observe(len(batch))
            for row, item in enumerate(batch):
                if not item.future.done():
                    item.future.set_result(vectors[row])
        except EncoderError as exc:
            log.error("a batch of %d inputs failed: %s", len(batch), exc)
            self._fail(batch, exc)
        finally:  # whatever stopped the batch, none of its requests is left waiting
            self._busy -= 1
            self._fail(batch, BatcherClosed("the batch could not be computed"))

    @staticmethod
    def _fail(items: Sequence[_Item], exc: BaseException) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)
