"""Backends, their health state, and the priority order requests try them in.

A backend is one ``api_base`` (shared by every group that lists it, so its
connection pool and health are shared too). Two ways out of rotation:

* *ejected*: a failure the table in ``gateway.failures`` says ejects (refused,
  reset, hung, died mid-stream), or health checks that failed (below), or its
  ``/health`` says it is not ready. Only a successful health probe brings it
  back, so a recovered primary returns within one probe interval.
* *cooling down*: it answered 429/5xx more than ``allowed_fails`` times in a
  row (LiteLLM's semantics); it returns after ``cooldown_time``.

A health check that gets no answer (or a refused or reset one) does not eject
a backend whose exchanges in flight still receive bytes: a backend busy with
a huge prompt answers ``/health`` late while its streams flow. It is ejected
when its exchanges made no progress during the check, or after
``GATEWAY_PROBE_FAILURES`` failed checks in a row; either way only the
exchanges that received nothing are aborted, never a stream that flows.

A backend out of rotation is still tried as a last resort when every
backend of the group is out, so a stale view never fails a request alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import orjson

from gateway.config import DeploymentSpec, GatewayConfig, RouterSettings
from gateway.metrics import GatewayMetrics
from gateway.upstream import Marks, Pool

log = logging.getLogger("p2.gateway.backends")


class BackendState(StrEnum):
    """What the gateway knows of a backend's health (its JSON value in ``/health/ready``)."""

    UNKNOWN = "unknown"  # not probed yet
    UP = "up"  # its /health answered 200
    LOADING = "loading"  # its /health answered 503: starting or loading its model
    DOWN = "down"  # ejected: a failure, or a probe that failed
    COOLDOWN = "cooldown"  # answering 429/5xx too often; back after cooldown_time


class Backend:
    """One upstream server: its pool, its health, its failure count."""

    def __init__(
        self,
        name: str,
        api_base: str,
        api_key: str | None,
        router: RouterSettings,
        metrics: GatewayMetrics,
        connect_timeout: float,
        probe_failures: int = 3,
    ) -> None:
        self.name = name
        self.api_base = api_base
        self.pool = Pool(api_base, connect_timeout=connect_timeout)
        self.prefix = self.pool.prefix
        root = self.prefix.removesuffix("/v1")
        self.health_path = f"{root}/health"
        self.auth = f"Authorization: Bearer {api_key}\r\n".encode() if api_key else b""
        self.state = BackendState.UNKNOWN
        self.detail = "not probed yet"
        self.ejected = False
        self.cooldown_until = 0.0
        self.fails = 0
        self.failed_probes = 0  # health checks in a row with no answer
        self._probe_failures = probe_failures
        self._router = router
        self._up = metrics.backend_up.labels(name)
        self._up.set(1)

    def in_rotation(self, now: float) -> bool:
        return not self.ejected and now >= self.cooldown_until

    def eject(self, reason: str) -> None:
        """Take the backend out until a health probe succeeds."""
        if not self.ejected:
            log.warning("backend %s ejected: %s", self.name, reason)
        self.ejected = True
        self.state, self.detail = BackendState.DOWN, reason
        self._up.set(0)

    def probe_failed(self, reason: str, marks: Marks) -> bool:
        """A health check got no answer; ``marks`` are the exchanges in flight when it began.

        Ejects, and aborts the exchanges that received nothing since, unless
        some of them still receive bytes (the backend is busy, not hung) and
        fewer than ``probe_failures`` checks failed in a row. True if ejected.
        """
        self.failed_probes += 1
        if self._probe_failures > self.failed_probes and self.pool.flowing(marks):
            log.info(
                "backend %s: health check failed (%s) but its streams flow; kept in rotation",
                self.name,
                reason,
            )
            return False
        self.eject(reason)
        aborted = self.pool.abort_stalled(marks, reason)
        if aborted:
            log.warning("backend %s: %d stalled requests moved on", self.name, aborted)
        return True

    def unready(self, detail: str, *, loading: bool) -> None:
        """Its ``/health`` answered, but not 200: out of rotation (``loading`` on 503)."""
        self.failed_probes = 0
        self.eject(detail)
        if loading:
            self.state = BackendState.LOADING

    def recover(self) -> None:
        """A health probe answered 200: back in rotation."""
        if self.ejected:
            log.info("backend %s back in rotation", self.name)
        self.failed_probes = 0
        self.ejected = False
        self.state, self.detail = BackendState.UP, "ok"
        if time.monotonic() >= self.cooldown_until:
            self._up.set(1)

    def soft_fail(self, reason: str) -> None:
        """An error answer (429/5xx): cool down after ``allowed_fails`` in a row."""
        self.fails += 1
        if self.fails > self._router.allowed_fails:
            self.fails = 0
            self.cooldown_until = time.monotonic() + self._router.cooldown_time
            log.warning(
                "backend %s cooling down for %.0fs: %s",
                self.name,
                self._router.cooldown_time,
                reason,
            )
            self._up.set(0)

    def succeed(self) -> None:
        self.fails = 0
        if self.cooldown_until:
            self.cooldown_until = 0.0
            if not self.ejected:
                self._up.set(1)

    def current_state(self, now: float) -> BackendState:
        if not self.ejected and now < self.cooldown_until:
            return BackendState.COOLDOWN
        return self.state

    def serving(self, now: float) -> bool:
        """Healthy and in rotation: what readiness counts."""
        return self.state is BackendState.UP and self.in_rotation(now)

    def describe(self) -> dict[str, object]:
        """Everything about the backend, its address and last error included (admins only)."""
        now = time.monotonic()
        return {
            "backend": self.name,
            "api_base": self.api_base,
            "state": self.current_state(now),
            "in_rotation": self.in_rotation(now),
            "detail": self.detail,
        }


def model_renames(served: str, group: str) -> tuple[tuple[bytes, bytes], ...]:
    """Byte rewrites that turn a backend's ``"model": served`` into the group's name.

    Clients see the model they asked for, whichever backend answered. Quotes
    inside JSON strings are escaped, so these patterns only match the field.
    """
    if not served or served == group:
        return ()
    old, new = orjson.dumps(served), orjson.dumps(group)
    return ((b'"model":' + old, b'"model":' + new), (b'"model": ' + old, b'"model": ' + new))


@dataclass(frozen=True)
class Deployment:
    """A group's view of a backend: which model name to ask it for."""

    backend: Backend
    model: str
    order: int
    renames: tuple[tuple[bytes, bytes], ...] = ()

    def rename(self, data: bytes) -> bytes:
        """``data`` with the backend's model name replaced by the group's."""
        for old, new in self.renames:
            data = data.replace(old, new)
        return data


class Registry:
    """Model groups → deployments in priority order; the backends behind them."""

    def __init__(
        self,
        config: GatewayConfig,
        metrics: GatewayMetrics,
        connect_timeout: float,
        probe_failures: int = 3,
    ) -> None:
        self.router = config.router
        self._probe_failures = probe_failures
        self.backends: dict[str, Backend] = {}
        self.groups: dict[str, tuple[Deployment, ...]] = {}
        for group, specs in config.groups().items():
            self.groups[group] = tuple(
                Deployment(
                    self._backend(s, metrics, connect_timeout),
                    s.model,
                    s.order,
                    model_renames(s.model, group),
                )
                for s in specs
            )

    def _backend(self, spec: DeploymentSpec, metrics: GatewayMetrics, timeout: float) -> Backend:
        backend = self.backends.get(spec.api_base)
        if backend is None:
            name = spec.name
            if any(b.name == name for b in self.backends.values()):
                name = f"{name}#{len(self.backends)}"
            backend = Backend(
                name,
                spec.api_base,
                spec.api_key,
                self.router,
                metrics,
                timeout,
                self._probe_failures,
            )
            self.backends[spec.api_base] = backend
        return backend

    def candidates(self, group: str) -> list[Deployment]:
        """The group's deployments: those in rotation by priority, then the rest."""
        deployments = self.groups[group]
        now = time.monotonic()
        first = [d for d in deployments if d.backend.in_rotation(now)]
        if len(first) == len(deployments):
            return first
        return first + [d for d in deployments if not d.backend.in_rotation(now)]

    def close(self) -> None:
        for backend in self.backends.values():
            backend.pool.close()
