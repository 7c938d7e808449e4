"""Cooldowns shared by every gateway process and instance, through Redis (``REDIS_URL``).

A deployment that cools down in one worker cools down in all of them: the
worker that decides it sets ``p2:gateway:cooldown:<deployment id>`` with the
cooldown as its expiry, and every worker reads the keys of its deployments
every ``interval`` seconds (one pipelined round trip, off the request path).
Deployment ids are stable (``model_info.id``, else ``api_base`` + model), so
instances on other machines with the same config share them too. Without
Redis, cooldowns are per process; when Redis fails, each process carries on
with its own and says so once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from gateway.backends import Cooldown

log = logging.getLogger("p2.gateway.cooldowns")

PREFIX = "p2:gateway:cooldown:"


class SharedCooldowns:
    def __init__(self, url: str, cooldowns: dict[str, Cooldown], interval: float = 0.25) -> None:
        self.url = url
        self.cooldowns = cooldowns
        self.interval = interval
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._failing = False
        for cooldown in cooldowns.values():
            cooldown.on_cooldown = self.publish

    async def start(self) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(
            self.url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="gateway-cooldowns")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pending):
            task.cancel()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def publish(self, cooldown: Cooldown, seconds: float) -> None:
        """Tell every process that ``cooldown``'s deployment is out for ``seconds``."""
        if self._redis is None:
            return
        task = asyncio.ensure_future(self._set(cooldown.id, seconds))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, ident: str, seconds: float) -> None:
        try:
            await self._redis.set(PREFIX + ident, "1", px=max(int(seconds * 1000), 1))
            self._ok()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: carry on alone
            self._failed(exc)

    async def sync(self) -> None:
        """Adopt the cooldowns other processes set."""
        ids = list(self.cooldowns)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for ident in ids:
                    pipe.pttl(PREFIX + ident)
                ttls = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: carry on alone
            self._failed(exc)
            return
        self._ok()
        now = time.monotonic()
        for ident, ttl in zip(ids, ttls, strict=True):
            if isinstance(ttl, int) and ttl > 0:
                cooldown = self.cooldowns[ident]
                until = now + ttl / 1000
                if until > cooldown.until + 0.05:
                    if cooldown.until <= now:
                        log.info("deployment %s cooling down (shared) for %.1fs", ident, ttl / 1000)
                    cooldown.until = until

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("shared cooldowns: Redis failed (%r); cooldowns are per process", exc)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.info("shared cooldowns: Redis is back")
        self._failing = False
