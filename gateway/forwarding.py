"""Send one request to a model group's backends in priority order until one answers.

This is the failover loop. Refused or reset connections, 429 and 5xx answers
move the request to the next backend at once. A backend that sends nothing
within the first-byte timeout gets a quick liveness probe: if its ``/health``
does not answer either, it is ejected and the request moves on (so later
requests do not wait); if it does, it is merely slow (a long generation) and
the request keeps waiting until the overall request timeout. Other 4xx
answers are the client's fault and are relayed as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.backends import Backend, Deployment, Registry
from gateway.metrics import GatewayMetrics
from gateway.prober import probe
from gateway.upstream import (
    AbortedError,
    FirstByteTimeoutError,
    ReadTimeoutError,
    Response,
    UpstreamError,
)
from p2.core.errors import GatewayTimeout, ServiceUnavailable

log = logging.getLogger("p2.gateway.forwarding")

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Call:
    """One client request on its way through the gateway."""

    group: str
    path: str  # endpoint below the backend's api_base, e.g. "/chat/completions"
    body: dict[str, Any]
    started: float
    deadline: float
    tried: set[str] = field(default_factory=set)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def label(self) -> str:
        """The group as people read it (internal groups start with a NUL byte)."""
        return self.group.lstrip("\x00")


@dataclass
class Answer:
    """A complete (non-streamed) backend answer."""

    deployment: Deployment
    status: int
    body: bytes
    content_type: bytes
    retry_after: bytes | None


class _Outcome:
    """Why the attempts so far failed, to pick the client's error at the end."""

    def __init__(self) -> None:
        self.last_answer: Answer | None = None
        self.timed_out = False
        self.reasons: list[str] = []


class Forwarder:
    """The failover loop over a registry's groups."""

    def __init__(
        self,
        registry: Registry,
        metrics: GatewayMetrics,
        *,
        first_byte_timeout: float,
        probe_timeout: float,
        read_timeout: float,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.first_byte_timeout = first_byte_timeout
        self.probe_timeout = probe_timeout
        self.read_timeout = read_timeout

    def encode(self, call: Call, deployment: Deployment) -> bytes:
        body = call.body
        if deployment.model:
            body = {**body, "model": deployment.model}
        return orjson.dumps(body)

    async def _still_alive(self, backend: Backend) -> bool:
        return await probe(backend, self.probe_timeout)

    async def _send(self, call: Call, deployment: Deployment) -> Response:
        backend = deployment.backend
        remaining = call.remaining()
        if remaining <= 0:
            raise GatewayTimeout(f"The request to model '{call.label}' timed out.")
        payload = self.encode(call, deployment)
        path = backend.prefix + call.path
        response = await backend.pool.request(
            b"POST",
            path,
            payload,
            first_byte_timeout=min(self.first_byte_timeout, remaining),
            extra_headers=backend.auth,
            still_alive=lambda: self._still_alive(backend),
            deadline=call.deadline,
        )
        return response

    def _failover(self, src: Backend, reason: str, pending: list[tuple[str, str]]) -> None:
        self.metrics.backend_errors.labels(src.name, reason).inc()
        self.metrics.backend_requests.labels(src.name, "error").inc()
        pending.append((src.name, reason))

    def _flush(self, pending: list[tuple[str, str]], to: str, group: str) -> None:
        for src, reason in pending:
            log.warning("failover for model %s: %s -> %s (%s)", group, src, to, reason)
            self.metrics.failovers.labels(src, to, reason).inc()
        pending.clear()

    async def attempt(
        self,
        call: Call,
        use: Callable[[Deployment, Response], Awaitable[Answer | Response]],
    ) -> Answer | Response:
        """Try the group's backends in order; ``use`` turns a 2xx response into the result.

        ``use`` may raise ``UpstreamError`` (e.g. the body broke off), which
        counts as that backend failing. Raises an ``APIError`` when every
        backend failed.
        """
        outcome = _Outcome()
        pending: list[tuple[str, str]] = []
        passes = 1 + self.registry.router.num_retries
        for attempt_pass in range(passes):
            if attempt_pass:
                await asyncio.sleep(min(0.05 * 2**attempt_pass, max(call.remaining(), 0)))
                call.tried.clear()
            for deployment in self.registry.candidates(call.group):
                backend = deployment.backend
                if backend.name in call.tried:
                    continue
                call.tried.add(backend.name)
                self._flush(pending, backend.name, call.label)
                try:
                    response = await self._send(call, deployment)
                    if response.status in RETRYABLE:
                        answer = await self._answer(deployment, response)
                        reason = f"http_{response.status}"
                        backend.soft_fail(reason)
                        self._failover(backend, reason, pending)
                        outcome.last_answer = answer
                        continue
                    if response.status >= 400:
                        return await self._answer(deployment, response)
                    result = await use(deployment, response)
                except (FirstByteTimeoutError, AbortedError) as exc:
                    backend.eject(str(exc))
                    outcome.timed_out = True
                    self._failover(backend, exc.reason, pending)
                    continue
                except ReadTimeoutError as exc:
                    outcome.timed_out = True
                    backend.soft_fail(exc.reason)
                    self._failover(backend, exc.reason, pending)
                    continue
                except UpstreamError as exc:
                    backend.eject(str(exc))
                    self._failover(backend, exc.reason, pending)
                    outcome.reasons.append(f"{backend.name}: {exc}")
                    continue
                backend.succeed()
                self.metrics.backend_requests.labels(backend.name, "ok").inc()
                return result
            if outcome.last_answer is None or call.remaining() <= 0:
                break
        self._flush(pending, "none", call.label)
        return self._give_up(call, outcome)

    async def _answer(self, deployment: Deployment, response: Response) -> Answer:
        body = await response.read(self.read_timeout)
        return Answer(
            deployment,
            response.status,
            body,
            response.header(b"content-type") or b"application/json",
            response.header(b"retry-after"),
        )

    def _give_up(self, call: Call, outcome: _Outcome) -> Answer:
        if outcome.last_answer is not None:
            return outcome.last_answer
        if outcome.timed_out or call.remaining() <= 0:
            raise GatewayTimeout(
                f"No backend of model '{call.label}' answered in time.", code="upstream_timeout"
            )
        detail = "; ".join(outcome.reasons) or "every backend is out of rotation"
        raise ServiceUnavailable(
            f"No backend of model '{call.label}' is available ({detail}).",
            code="no_backend_available",
            headers={"Retry-After": "1"},
        )

    async def complete(self, call: Call) -> Answer:
        """A non-streamed request: the whole answer of the first backend that gives one."""

        async def read(deployment: Deployment, response: Response) -> Answer:
            return await self._answer(deployment, response)

        result = await self.attempt(call, read)
        assert isinstance(result, Answer)
        return result

    async def open_stream(self, call: Call) -> tuple[Deployment, Response] | Answer:
        """A streamed request: the first backend whose response head is 2xx, or the error."""
        chosen: list[Deployment] = []

        async def keep(deployment: Deployment, response: Response) -> Response:
            chosen.append(deployment)
            return response

        result = await self.attempt(call, keep)
        if isinstance(result, Answer):
            return result
        return chosen[0], result
