"""One supervised service: start after its dependencies, probe, restart with backoff."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx

from p2.core.process import spawn, terminate
from p2.supervisor.spec import HealthCheck, ServiceSpec
from p2.supervisor.state import Health, ServiceState

log = logging.getLogger("p2.supervisor")

POLL = 0.25
MIN_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # healthy this long resets the backoff; a flapping service keeps backing off
STOP_GRACE = 10.0


async def http_check(spec: ServiceSpec, client: httpx.AsyncClient, limit: float) -> str | None:
    """None when ``GET health_url`` answers 200, else why not."""
    try:
        response = await client.get(spec.health_url, timeout=limit)
    except httpx.TimeoutException:
        return f"health check timed out after {limit:.0f}s"
    except httpx.TransportError as exc:
        return f"health check failed ({type(exc).__name__})"
    if response.status_code != 200:
        return f"health check answered {response.status_code}"
    return None


async def redis_check(spec: ServiceSpec, _: httpx.AsyncClient, limit: float) -> str | None:
    """None when the port answers Redis's ``PING`` with ``+PONG``, else why not."""
    host = "127.0.0.1" if spec.host in ("0.0.0.0", "") else spec.host
    writer = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, spec.port)
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            await writer.drain()
            answer = (await reader.readline()).strip()
    except TimeoutError:
        return f"PING timed out after {limit:.0f}s"
    except OSError as exc:
        return f"PING failed ({type(exc).__name__})"
    finally:
        if writer is not None:
            writer.close()
    if answer != b"+PONG":
        return f"PING answered {answer[:80].decode(errors='replace') or 'nothing'}"
    return None


Check = Callable[[ServiceSpec, httpx.AsyncClient, float], Awaitable[str | None]]
CHECKS: dict[HealthCheck, Check] = {HealthCheck.HTTP: http_check, HealthCheck.REDIS: redis_check}


class ServiceRunner:
    def __init__(
        self,
        spec: ServiceSpec,
        state: ServiceState,
        *,
        logs_dir: Path,
        changed: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self.state = state
        self.healthy = asyncio.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._logs_dir = logs_dir
        self._changed = changed
        self._say = say
        self._stopping = False

    @property
    def log_path(self) -> Path:
        return self._logs_dir / f"{self.spec.name}.log"

    async def run(self, dependencies: Sequence[ServiceRunner]) -> None:
        """Start once dependencies are healthy; keep the service alive until stopped."""
        if dependencies:
            self._set(Health.WAITING)
            for dep in dependencies:
                await dep.healthy.wait()
        backoff = MIN_BACKOFF
        while not self._stopping:
            self._start()
            reason = await self._until_healthy()
            if reason is None:
                healthy_since = time.monotonic()
                reason = await self._watch()
                if time.monotonic() - healthy_since >= STABLE_AFTER:
                    backoff = MIN_BACKOFF  # it ran well for a while: a fresh failure

            if self._stopping:
                return
            self.healthy.clear()
            self.state.restarts += 1
            self.state.last_error = reason
            self._set(Health.RESTARTING)
            self._say(
                f"↻ {self.spec.name} {reason}; restarting in {backoff:g}s "
                f"(restart {self.state.restarts})"
            )
            log.warning("%s %s; restart %d", self.spec.name, reason, self.state.restarts)
            await self._kill()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _start(self) -> None:
        self.proc = spawn(self.spec.argv, env=self.spec.env, log_path=self.log_path)
        self.state.pid = self.proc.pid
        self.state.started_at = time.time()
        self.state.healthy_at = None
        self._set(Health.STARTING)

    async def probe(self, client: httpx.AsyncClient, limit: float) -> str | None:
        """None when healthy, else why not (by the spec's kind of check)."""
        return await CHECKS[self.spec.check](self.spec, client, limit)

    async def _until_healthy(self) -> str | None:
        probe = self.spec.probe
        deadline = time.monotonic() + min(
            self.spec.start_timeout, probe.start_period + probe.interval * probe.retries
        )
        async with httpx.AsyncClient() as client:
            while not self._stopping:
                if self.proc is not None and self.proc.poll() is not None:
                    return f"exited with code {self.proc.returncode} while starting"
                if await self.probe(client, min(probe.timeout, 5.0)) is None:
                    self.state.healthy_at = time.time()
                    self._set(Health.HEALTHY)
                    self.healthy.set()
                    started = self.state.started_at or self.state.healthy_at
                    self._say(
                        f"✔ {self.spec.name} healthy on :{self.spec.port} "
                        f"({self.state.healthy_at - started:.1f}s)"
                    )
                    return None
                if time.monotonic() > deadline:
                    return "did not become healthy in time"
                await asyncio.sleep(POLL)
        return None

    async def _watch(self) -> str:
        """Return why the service must be restarted: it exited, or failed ``retries`` probes."""
        probe = self.spec.probe
        failures = 0
        next_probe = time.monotonic() + probe.interval
        async with httpx.AsyncClient() as client:
            while not self._stopping:
                if self.proc is not None and self.proc.poll() is not None:
                    return f"exited with code {self.proc.returncode}"
                if time.monotonic() >= next_probe:
                    problem = await self.probe(client, probe.timeout)
                    if problem is None:
                        if failures:
                            self._set(Health.HEALTHY)
                        failures = 0
                    else:
                        failures += 1
                        self.state.last_error = problem
                        self._set(Health.UNHEALTHY)
                        if failures >= probe.retries:
                            return f"unhealthy: {problem} ({failures} times)"
                    next_probe = time.monotonic() + probe.interval
                await asyncio.sleep(POLL)
        return "stopping"

    async def _kill(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(terminate, self.proc, STOP_GRACE)

    async def stop(self) -> None:
        self._stopping = True
        await self._kill()
        self.healthy.clear()
        self._set(Health.STOPPED)

    def _set(self, health: Health) -> None:
        self.state.health = health
        self._changed()
