"""Send one request to a model group's backends in priority order until one answers.

This is the failover loop. What each failure does (eject the backend, count
it toward a cooldown, move on to the next backend or answer the client) is
the table in ``gateway.failures``; this loop only applies it. A backend that
sends nothing within the first-byte timeout gets a quick liveness probe: if
its ``/health`` does not answer either (and its other exchanges show no
progress), it is ejected and the request moves on; if it does, it is merely
slow (a long generation) and the request keeps waiting until the overall
request timeout.

Client-visible errors name the model group only; backends' addresses and
OS errors go to the log.
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
from gateway.failures import POLICY, Cooldown, Final, Kind, Then, http_kind, upstream_kind
from gateway.metrics import GatewayMetrics
from gateway.prober import probe
from gateway.upstream import Response, UpstreamError
from p2.core.errors import GatewayTimeout, ServiceUnavailable

log = logging.getLogger("p2.gateway.forwarding")


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
        self.reasons: list[str] = []  # for the log only: they name hosts
        self.seen: set[Kind] = set()
        self.suspects: list[tuple[Backend, Kind]] = []  # deferred cooldowns

    def settle(self, *, blame: bool) -> None:
        """Deferred cooldowns: charged once another backend answered, else dropped."""
        if blame:
            for backend, kind in self.suspects:
                backend.soft_fail(kind)
        self.suspects.clear()


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
                    if response.status >= 400:
                        answer = await self._answer(deployment, response)
                        kind = http_kind(answer.status, answer.body)
                        if self._failed(outcome, backend, kind, f"HTTP {answer.status}", pending):
                            outcome.settle(blame=False)
                            return answer
                        outcome.last_answer = answer
                        continue
                    result = await use(deployment, response)
                except UpstreamError as exc:
                    if not self._failed(outcome, backend, upstream_kind(exc), str(exc), pending):
                        continue
                    self._flush(pending, "none", call.label)
                    outcome.settle(blame=False)
                    return self._give_up(call, outcome)
                except asyncio.CancelledError:  # the client went away
                    self.metrics.backend_requests.labels(backend.name, "cancelled").inc()
                    raise
                outcome.settle(blame=True)
                backend.succeed()
                self.metrics.backend_requests.labels(backend.name, "ok").inc()
                return result
            if outcome.last_answer is None or call.remaining() <= 0:
                break
        self._flush(pending, "none", call.label)
        outcome.settle(blame=False)
        return self._give_up(call, outcome)

    def _failed(
        self,
        outcome: _Outcome,
        backend: Backend,
        kind: Kind,
        detail: str,
        pending: list[tuple[str, str]],
    ) -> bool:
        """Apply the failure table to one failed attempt; True: answer the client now."""
        policy = POLICY[kind]
        then = policy.then
        if kind in outcome.seen and policy.again is not None:
            then = policy.again
            log.info("%s again on %s: the request is the cause; relayed", kind, backend.name)
        outcome.seen.add(kind)
        if policy.final is Final.TIMEOUT:
            outcome.timed_out = True
        elif policy.final is Final.UNAVAILABLE:
            outcome.reasons.append(f"{backend.name}: {detail}")
        if then is Then.CLIENT:
            return True
        if policy.eject:
            backend.eject(detail)
        if policy.cooldown is Cooldown.YES:
            backend.soft_fail(kind)
        elif policy.cooldown is Cooldown.DEFERRED:
            outcome.suspects.append((backend, kind))
        self._failover(backend, kind, pending)
        return False

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
            log.warning("no backend of model %s answered in time", call.label)
            raise GatewayTimeout(
                f"No backend of model '{call.label}' answered in time.", code="upstream_timeout"
            )
        detail = "; ".join(outcome.reasons) or "every backend is out of rotation"
        log.warning("no backend of model %s is available: %s", call.label, detail)
        raise ServiceUnavailable(
            f"No backend of model '{call.label}' is available.",
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
