"""Backends and deployments: health, cooldowns, limits, and what each request is sent with.

A *backend* is one server (``api_base`` and its TLS settings): one connection
pool and one health state, shared by every deployment on it. A *deployment*
is one ``model_list`` entry, a group's view of a backend: the model name it
is asked for, its path and headers, its order, weight and limits. Two ways
out of rotation:

* the backend is *ejected*: a failure the table in ``gateway.failures`` says
  ejects (refused, reset, hung, died mid-stream), a health check that failed,
  or its ``/health`` says it is not ready. A probed backend comes back only
  when a probe succeeds, so a recovered primary returns within one interval;
  a passive one (no probe) is tried again after ``cooldown_time``.
* the deployment *cools down*: more than ``allowed_fails`` error answers
  (429/5xx...) within a minute (LiteLLM's semantics, per error class with
  ``allowed_fails_policy``); it returns after ``cooldown_time``. Cooldowns are
  kept by deployment id (``api_base`` + model), so groups listing the same
  deployment share them, and with Redis so do workers and instances
  (``gateway.cooldowns``).

A health check that gets no answer (or a refused or reset one) does not eject
a backend whose exchanges in flight still receive bytes: a backend busy with
a huge prompt answers ``/health`` late while its streams flow. It is ejected
when its exchanges made no progress during the check, or after
``GATEWAY_PROBE_FAILURES`` failed checks in a row; either way only the
exchanges that received nothing are aborted, never a stream that flows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import orjson

from gateway.config import DeploymentSpec, RouterSettings
from gateway.failures import ERROR_CLASS, Kind
from gateway.metrics import GatewayMetrics
from gateway.providers import Probe
from gateway.upstream import Marks, Pool, tls_context

log = logging.getLogger("p2.gateway.backends")

ENDPOINTS = ("/chat/completions", "/completions", "/embeddings")
WINDOW = 60.0  # LiteLLM counts allowed_fails, rpm and tpm per minute


class BackendState(StrEnum):
    """What the gateway knows of a backend's health (its JSON value in ``/health/ready``)."""

    UNKNOWN = "unknown"  # not probed yet
    UP = "up"  # its probe answered 200 (or, passive: its last request did not fail)
    LOADING = "loading"  # its /health answered 503: starting or loading its model
    DOWN = "down"  # ejected: a failure, or a probe that failed
    COOLDOWN = "cooldown"  # answering 429/5xx too often; back after cooldown_time


class Backend:
    """One upstream server: its pool and its health."""

    def __init__(
        self,
        name: str,
        spec: DeploymentSpec,
        metrics: GatewayMetrics,
        connect_timeout: float,
        probe_failures: int = 3,
        retry_after: float = 5.0,
    ) -> None:
        self.name = name
        self.api_base = spec.api_base
        self.probe = spec.probe
        tls = tls_context(spec.ssl_verify) if spec.api_base.startswith("https:") else None
        self.pool = Pool(spec.api_base, connect_timeout=connect_timeout, tls=tls)
        self.prefix = self.pool.prefix
        if spec.azure_api_version is not None:
            version = quote(spec.azure_api_version)
            self.probe_path = f"{self.prefix}/openai/models?api-version={version}"
        elif spec.probe is Probe.MODELS:
            self.probe_path = f"{self.prefix}/models"
        else:
            self.probe_path = f"{self.prefix.removesuffix('/v1')}/health"
        self.probe_headers = auth_headers(spec)
        self.passive = spec.probe is Probe.PASSIVE
        self.state = BackendState.UP if self.passive else BackendState.UNKNOWN
        self.detail = "passive: judged by its answers" if self.passive else "not probed yet"
        self.ejected = False
        self.retry_at = 0.0  # passive: when an ejected backend is tried again
        self.failed_probes = 0  # health checks in a row with no answer
        self._probe_failures = probe_failures
        self._retry_after = retry_after
        self._up = metrics.backend_up.labels(name)
        self._up.set(1)

    @property
    def health_path(self) -> str:
        return self.probe_path

    def in_rotation(self, now: float) -> bool:
        return not self.ejected or (self.passive and now >= self.retry_at)

    def eject(self, reason: str) -> None:
        """Take the backend out until a health probe succeeds (passive: for a while)."""
        if not self.ejected:
            log.warning("backend %s ejected: %s", self.name, reason)
        self.ejected = True
        if self.passive:
            self.retry_at = time.monotonic() + self._retry_after
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
        """Its probe answered, but not 200: out of rotation (``loading`` on 503)."""
        self.failed_probes = 0
        self.eject(detail)
        if loading:
            self.state = BackendState.LOADING

    def recover(self) -> None:
        """A health probe answered 200 (or, passive, a request succeeded): back in rotation."""
        if self.ejected:
            log.info("backend %s back in rotation", self.name)
            self._up.set(1)
        self.failed_probes = 0
        self.ejected = False
        self.state, self.detail = BackendState.UP, "ok"

    def current_state(self, now: float) -> BackendState:
        if self.ejected and self.in_rotation(now):
            return BackendState.UP  # passive, on trial again
        return self.state

    def describe(self) -> dict[str, object]:
        """Everything about the backend, its address and last error included (admins only)."""
        now = time.monotonic()
        return {
            "backend": self.name,
            "api_base": self.api_base,
            "probe": self.probe.value,
            "state": self.current_state(now),
            "in_rotation": self.in_rotation(now),
            "detail": self.detail,
        }


def auth_headers(spec: DeploymentSpec) -> bytes:
    """Pre-encoded header lines of every request to ``spec``: its key (Azure's ``api-key``
    header, else a bearer token) and its extra headers."""
    lines = []
    if spec.api_key:
        if spec.azure_api_version is not None:
            lines.append(f"api-key: {spec.api_key}\r\n")
        else:
            lines.append(f"Authorization: Bearer {spec.api_key}\r\n")
    lines.extend(f"{name}: {value}\r\n" for name, value in spec.headers)
    return "".join(lines).encode("latin-1")


class Cooldown:
    """A deployment's failures and cooldown, shared by every entry with its id."""

    __slots__ = ("fails", "id", "on_cooldown", "until", "window")

    def __init__(self, ident: str) -> None:
        self.id = ident
        self.until = 0.0  # monotonic
        self.fails: dict[str, int] = {}  # per error class, in the current minute
        self.window = 0.0
        self.on_cooldown: Callable[[Cooldown, float], None] | None = None  # shares it (Redis)


def model_renames(served: str, shown: str) -> tuple[tuple[bytes, bytes], ...]:
    """Byte rewrites that turn a backend's ``"model": served`` into ``shown``.

    Clients see the model they asked for, whichever backend answered. Quotes
    inside JSON strings are escaped, so these patterns only match the field.
    """
    if not served or served == shown:
        return ()
    old, new = orjson.dumps(served), orjson.dumps(shown)
    return ((b'"model":' + old, b'"model":' + new), (b'"model": ' + old, b'"model": ' + new))


def rename(data: bytes, renames: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for old, new in renames:
        data = data.replace(old, new)
    return data


class Deployment:
    """A group's view of a backend: what to ask it for, and how much."""

    def __init__(
        self,
        spec: DeploymentSpec,
        backend: Backend | None,
        cooldown: Cooldown,
        router: RouterSettings,
        *,
        track: bool = False,
    ) -> None:
        self.spec = spec
        self.group = spec.group
        self.backend = backend  # None: a native provider, through LiteLLM
        self.name = backend.name if backend is not None else spec.name
        self.id = spec.deployment_id
        self.model = spec.model
        self.order = spec.order
        self.weight = spec.weight or spec.rpm or spec.tpm or 1
        self.rpm, self.tpm = spec.rpm, spec.tpm
        self.max_parallel = spec.max_parallel_requests
        self.timeout = spec.timeout
        self.stream_timeout = spec.stream_timeout
        self.headers = auth_headers(spec)
        self.defaults = dict(spec.defaults)
        self.renames = () if spec.wildcard else model_renames(spec.model, spec.group)
        self.cooldown = cooldown
        self.adapter: Any = None  # gateway.adapter.Adapter for a native deployment
        self.limited = bool(self.rpm or self.tpm or self.max_parallel)
        self.track = track or self.limited  # count requests in flight and per minute
        self.in_flight = 0
        self.minute = 0.0
        self.requests = 0  # in the current minute
        self.tokens = 0  # in the current minute
        self.latency = 0.0  # seconds to the response head, smoothed (latency-based routing)
        self._router = router
        prefix = backend.prefix if backend is not None else ""
        if spec.azure_api_version is not None:
            version = quote(spec.azure_api_version)
            self.paths = {
                e: f"{prefix}/openai/deployments/{quote(spec.model)}{e}?api-version={version}"
                for e in ENDPOINTS
            }
        else:
            self.paths = {e: prefix + e for e in ENDPOINTS}

    def path(self, endpoint: str, model: str) -> str:
        """The request path for ``endpoint`` (an Azure wildcard names the model in it)."""
        if self.spec.azure_api_version is not None and model != self.model:
            version = quote(self.spec.azure_api_version)
            return f"{self.backend.prefix if self.backend else ''}/openai/deployments/" + (
                f"{quote(model)}{endpoint}?api-version={version}"
            )
        return self.paths[endpoint]

    def in_rotation(self, now: float) -> bool:
        backend = self.backend
        if backend is not None and backend.ejected and not backend.in_rotation(now):
            return False
        return now >= self.cooldown.until

    def _roll(self, now: float) -> None:
        if now - self.minute >= WINDOW:
            self.minute, self.requests, self.tokens = now, 0, 0

    def has_capacity(self, now: float) -> bool:
        """Under its rpm, tpm and max_parallel_requests (always, when it has none)."""
        if not self.limited:
            return True
        self._roll(now)
        if self.max_parallel and self.in_flight >= self.max_parallel:
            return False
        if self.rpm and self.requests >= self.rpm:
            return False
        return not (self.tpm and self.tokens >= self.tpm)

    def started(self) -> None:
        """A request was sent to it (counted when tracked)."""
        self.in_flight += 1
        now = time.monotonic()
        self._roll(now)
        self.requests += 1

    def finished(self) -> None:
        self.in_flight -= 1

    def add_tokens(self, count: int) -> None:
        if self.track and count:
            self._roll(time.monotonic())
            self.tokens += count

    def observe_latency(self, seconds: float) -> None:
        self.latency = seconds if not self.latency else 0.8 * self.latency + 0.2 * seconds

    def soft_fail(self, kind: Kind) -> None:
        """An error answer: cool down after more than the allowed fails within a minute."""
        router = self._router
        if router.disable_cooldowns:
            return
        cooldown = self.cooldown
        now = time.monotonic()
        if now - cooldown.window >= WINDOW:
            cooldown.window = now
            cooldown.fails.clear()
        error = ERROR_CLASS.get(kind, "InternalServerError")
        count = cooldown.fails.get(error, 0) + 1
        cooldown.fails[error] = count
        allowed = router.allowed_fails_policy.get(error, router.allowed_fails)
        if count > allowed:
            cooldown.fails.clear()
            self.cool_down(now + router.cooldown_time, f"{kind} ({count} in a minute)")
            if cooldown.on_cooldown is not None:
                cooldown.on_cooldown(cooldown, router.cooldown_time)

    def cool_down(self, until: float, reason: str) -> None:
        if until <= self.cooldown.until:
            return
        self.cooldown.until = until
        log.warning(
            "deployment %s (%s, %s) cooling down for %.0fs: %s",
            self.id,
            self.group,
            self.name,
            until - time.monotonic(),
            reason,
        )

    def succeed(self) -> None:
        if self.backend is not None and self.backend.passive and self.backend.ejected:
            self.backend.recover()

    def current_state(self, now: float) -> BackendState:
        if self.backend is not None and not self.backend.in_rotation(now):
            return self.backend.current_state(now)
        if now < self.cooldown.until:
            return BackendState.COOLDOWN
        return self.backend.current_state(now) if self.backend is not None else BackendState.UP

    def serving(self, now: float) -> bool:
        """Healthy and in rotation: what readiness counts."""
        return self.current_state(now) is BackendState.UP and self.in_rotation(now)

    def describe(self) -> dict[str, object]:
        now = time.monotonic()
        described: dict[str, object] = (
            self.backend.describe()
            if self.backend is not None
            else {"backend": self.name, "api_base": self.spec.api_base, "probe": "passive"}
        )
        described.update(
            {
                "id": self.id,
                "provider": self.spec.provider,
                "model": self.model,
                "order": self.order,
                "state": self.current_state(now),
                "in_rotation": self.in_rotation(now),
            }
        )
        return described
