"""Active health checks: poll every probed backend and keep rotation honest.

A backend's probe is its ``/health`` (``probe: health``, llama.cpp, vLLM,
P2's services) or ``GET /v1/models`` with its key (``probe: models``: Ollama,
LM Studio, a cloud API one wants probed); a ``passive`` backend is not probed
and is judged by its answers to real requests. 200 puts a backend (back) in
rotation; 503 (still loading) or any other status takes it out. A refused
connection or no answer within the probe timeout takes it out unless its
streams still flow (see ``Backend.probe_failed``). Probes run concurrently,
once per interval, in one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from gateway.backends import Backend
from gateway.routing import Registry
from gateway.upstream import UpstreamError, get

log = logging.getLogger("p2.gateway.prober")


def _detail(status: int, body: bytes) -> str:
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = ""
    return f"its probe answered {status}" + (f": {message}" if message else "")


async def probe(backend: Backend, limit: float) -> bool:
    """Probe one backend and update its state.

    True if it is alive: its probe answered 200, or it gave no answer while
    the backend's exchanges in flight still receive bytes (busy, not hung).
    """
    marks = backend.pool.marks()
    try:
        status, body = await get(backend.pool, backend.probe_path, limit, backend.probe_headers)
    except TimeoutError:
        return not backend.probe_failed(f"its probe gave no answer within {limit:.3g}s", marks)
    except UpstreamError as exc:
        return not backend.probe_failed(f"its probe failed: {exc}", marks)
    if status == 200:
        backend.recover()
        return True
    backend.unready(_detail(status, body), loading=status == 503)
    return False


class Prober:
    """Owns the polling task; ``start``/``stop`` from the app's lifespan."""

    def __init__(self, registry: Registry, interval: float, timeout: float) -> None:
        self.registry = registry
        self.interval = interval
        self.timeout = min(timeout, interval)
        self._task: asyncio.Task[None] | None = None

    async def probe_all(self) -> None:
        backends = [b for b in self.registry.backends.values() if not b.passive]
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
