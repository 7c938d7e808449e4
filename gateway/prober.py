"""Active health checks: poll every backend's ``/health`` and keep rotation honest.

``/health`` 200 puts a backend (back) in rotation; 503 (still loading), any
other status, a refused connection or no answer within the probe timeout
takes it out. Probes run concurrently, once per interval, in one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from gateway.backends import Backend, BackendState, Registry
from gateway.upstream import UpstreamError, get

log = logging.getLogger("p2.gateway.prober")


def _detail(status: int, body: bytes) -> str:
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = ""
    return f"/health answered {status}" + (f": {message}" if message else "")


async def probe(backend: Backend, limit: float) -> bool:
    """Probe one backend and update its state; True if it is healthy."""
    try:
        status, body = await get(backend.pool, backend.health_path, limit)
    except TimeoutError:
        backend.eject(f"/health gave no answer within {limit:.3g}s", abort_inflight=True)
        return False
    except UpstreamError as exc:
        backend.eject(f"/health failed: {exc}", abort_inflight=True)
        return False
    if status == 200:
        backend.recover()
        return True
    backend.eject(_detail(status, body))
    if status == 503:
        backend.state = BackendState.LOADING
    return False


class Prober:
    """Owns the polling task; ``start``/``stop`` from the app's lifespan."""

    def __init__(self, registry: Registry, interval: float, timeout: float) -> None:
        self.registry = registry
        self.interval = interval
        self.timeout = min(timeout, interval)
        self._task: asyncio.Task[None] | None = None

    async def probe_all(self) -> None:
        backends = list(self.registry.backends.values())
        await asyncio.gather(*(probe(b, self.timeout) for b in backends))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.probe_all()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def start(self) -> None:
        await self.probe_all()
        self._task = asyncio.create_task(self._run(), name="gateway-prober")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
