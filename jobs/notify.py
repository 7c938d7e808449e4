"""Finished-job notices over Redis pub/sub, so a waiting request answers at once.

Workers publish a job's id when it reaches a final state; the job API wakes
whoever waits for it. A notice can be lost (pub/sub keeps nothing), so a waiter
also re-reads the database every ``POLL`` seconds: the database stays the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import redis
from redis.exceptions import RedisError

log = logging.getLogger("p2.jobs.notify")

CHANNEL = "p2-jobs:finished"
POLL = 0.5


class Announcer:
    """The worker's side: say that a job finished."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def finished(self, job_id: str) -> None:
        try:
            self._client.publish(CHANNEL, job_id)
        except (RedisError, OSError) as exc:  # waiters fall back to polling
            log.warning("could not announce job %s: %s", job_id, exc)

    def close(self) -> None:
        self._client.close()


class Waiters:
    """The API's side: requests waiting for jobs, woken by notices from a listener thread."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._events: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        """Listen from the first wait on (the loop that waits is the one to wake)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._listen, name="jobs-notices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis.from_url(self._url, socket_timeout=5, socket_connect_timeout=2)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._wake(message["data"].decode())
            except (RedisError, OSError) as exc:
                log.debug("job notices interrupted (%s); waiters poll meanwhile", exc)
                self._stop.wait(1.0)
            finally:
                client.close()

    def _wake(self, job_id: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_waiters, job_id)

    def _wake_waiters(self, job_id: str) -> None:
        for event in self._events.get(job_id, ()):
            event.set()

    async def wait(self, job_id: str, within: float, done: Callable[[], Awaitable[bool]]) -> bool:
        """Until ``done()`` is true (checked on each notice and every ``POLL`` s) or
        ``within`` seconds pass; whether it is done."""
        if self._thread is None:
            self._start()
        event = asyncio.Event()
        self._events.setdefault(job_id, set()).add(event)
        deadline = time.monotonic() + within
        try:
            while True:
                event.clear()  # before the check: a notice arriving during it is kept
                if await done():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(POLL, left))
        finally:
            waiting = self._events.get(job_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[job_id]
