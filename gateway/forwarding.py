"""Send one request to a model group's deployments until one answers; then to its fallbacks.

This is the failover loop. What each failure does (eject the backend, count
it toward a cooldown, move on to the next deployment or answer the client) is
the table in ``gateway.failures``; this loop only applies it. A backend that
sends nothing within the first-byte timeout gets a quick liveness probe: if
its ``/health`` does not answer either (and its other exchanges show no
progress), it is ejected and the request moves on; if it does, it is merely
slow (a long generation) and the request keeps waiting until the attempt's
deadline (the request's, or the deployment's ``timeout``). A passive backend
(no probe) is always waited for.

When every deployment failed, ``num_retries`` / ``retry_policy`` may allow
another pass over the group; then the group's fallbacks are tried, each a
group of its own: ``context_window_fallbacks`` after ``context_length_exceeded``,
``content_policy_fallbacks`` after a content refusal, ``fallbacks`` (or
``default_fallbacks``) after anything else but the client's own 4xx.

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

from gateway.backends import Backend, Deployment, model_renames
from gateway.failures import (
    ERROR_CLASS,
    POLICY,
    Cooldown,
    Final,
    Kind,
    Then,
    http_kind,
    upstream_kind,
)
from gateway.metrics import GatewayMetrics
from gateway.prober import probe
from gateway.resolve import Target
from gateway.routing import Registry
from gateway.upstream import Exchange, ReadTimeoutError, UpstreamError
from p2.core.errors import APIError, GatewayTimeout, ServiceUnavailable

log = logging.getLogger("p2.gateway.forwarding")

Renames = tuple[tuple[bytes, bytes], ...]


@dataclass
class Call:
    """One client request on its way through the gateway."""

    group: str
    path: str  # endpoint below the backend's api_base, e.g. "/chat/completions"
    body: dict[str, Any]
    started: float
    deadline: float
    tried: set[str] = field(default_factory=set)
    target: Target | None = None  # an alias, a fine-tuned model or a wildcard match
    stream: bool = False
    attempt_deadline: float = 0.0  # of the attempt in progress (its deployment's timeout)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def label(self) -> str:
        """The group as people read it (internal groups start with a NUL byte)."""
        return self.group.lstrip("\x00")

    def renames(self, deployment: Deployment) -> Renames:
        """Rewrites that make answers name what the client asked for."""
        target = self.target
        if target is None:
            return deployment.renames
        sent = target.sent(deployment.model)
        found: Renames = model_renames(sent, target.shown)
        if deployment.model != sent and "*" not in deployment.model:
            found += model_renames(deployment.model, target.shown)
        return found


@dataclass
class Answer:
    """A complete (non-streamed) backend answer."""

    deployment: Deployment
    status: int
    body: bytes
    content_type: bytes
    retry_after: bytes | None
    renames: Renames = ()


@dataclass
class Opened:
    """A stream whose response head was 2xx."""

    deployment: Deployment
    response: Exchange
    renames: Renames


class _Outcome:
    """Why the attempts so far failed, to pick the client's error at the end."""

    def __init__(self) -> None:
        self.last_answer: Answer | None = None
        self.last_kind: Kind | None = None
        self.answered = False  # some deployment answered with an error (429/5xx)
        self.timed_out = False
        self.reasons: list[str] = []  # for the log only: they name hosts
        self.seen: set[Kind] = set()
        self.suspects: list[tuple[Deployment, Kind]] = []  # deferred cooldowns

    def settle(self, *, blame: bool) -> None:
        """Deferred cooldowns: charged once another deployment answered, else dropped."""
        if blame:
            for deployment, kind in self.suspects:
                deployment.soft_fail(kind)
        self.suspects.clear()


class GroupFailed(Exception):
    """Every deployment of a group failed: ``answer`` to relay, or ``error`` to raise."""

    def __init__(self, kind: Kind | None, answer: Answer | None, error: APIError | None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.answer = answer
        self.error = error

    def result(self) -> Answer:
        if self.answer is not None:
            return self.answer
        assert self.error is not None
        raise self.error


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
        self.router = registry.router
        self.first_byte_timeout = first_byte_timeout
        self.probe_timeout = probe_timeout
        self.read_timeout = read_timeout

    def encode(self, call: Call, deployment: Deployment) -> bytes:
        body = call.body
        if deployment.defaults:
            body = {**deployment.defaults, **body}
        target = call.target
        model = deployment.model if target is None else target.sent(deployment.model)
        if model:
            body = {**body, "model": model}
        return orjson.dumps(body)

    async def _still_alive(self, backend: Backend) -> bool:
        if backend.passive:
            return True  # nothing to ask: wait for its answer until the deadline
        return await probe(backend, self.probe_timeout)

    def _attempt_deadline(self, call: Call, deployment: Deployment) -> float:
        deadline = call.deadline
        limit = deployment.stream_timeout if call.stream else None
        limit = limit or deployment.timeout
        if limit:
            deadline = min(deadline, time.monotonic() + limit)
        return deadline

    async def _send(self, call: Call, deployment: Deployment, deadline: float) -> Exchange:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if call.remaining() <= 0:
                raise GatewayTimeout(f"The request to model '{call.label}' timed out.")
            raise ReadTimeoutError("the deployment's timeout passed")
        if deployment.track:
            deployment.started()
        try:
            backend = deployment.backend
            if backend is None:
                response: Exchange = await deployment.adapter.send(call, deployment, deadline)
            else:
                response = await backend.pool.request(
                    b"POST",
                    deployment.paths[call.path]
                    if call.target is None
                    else deployment.path(call.path, call.target.sent(deployment.model)),
                    self.encode(call, deployment),
                    first_byte_timeout=min(self.first_byte_timeout, remaining),
                    extra_headers=deployment.headers,
                    still_alive=lambda: self._still_alive(backend),
                    deadline=deadline,
                )
        except BaseException:
            if deployment.track:
                deployment.finished()
            raise
        if deployment.track:
            response.on_release = deployment.finished
        return response

    def _failover(self, src: Deployment, reason: str, pending: list[tuple[str, str]]) -> None:
        self.metrics.backend_errors.labels(src.name, reason).inc()
        self.metrics.backend_requests.labels(src.name, "error").inc()
        pending.append((src.name, reason))

    def _flush(self, pending: list[tuple[str, str]], to: str, group: str) -> None:
        for src, reason in pending:
            log.warning("failover for model %s: %s -> %s (%s)", group, src, to, reason)
            self.metrics.failovers.labels(src, to, reason).inc()
        pending.clear()

    def _retries(self, group: str, kind: Kind | None, answered: bool) -> int:
        """Extra passes over ``group`` after a pass that ended with ``kind``."""
        router = self.router
        policy = router.model_group_retry_policy.get(group) or router.retry_policy
        error = ERROR_CLASS.get(kind) if kind is not None else None
        if error is not None and error in policy:
            return policy[error]
        if not answered:  # refused, reset or hung everywhere: a new pass would find the same
            return 0
        return policy.get("Default", router.num_retries)

    async def attempt(
        self,
        call: Call,
        use: Callable[[Call, Deployment, Exchange], Awaitable[Answer | Exchange]],
    ) -> Answer | Exchange:
        """The group's deployments, then its fallbacks; ``use`` turns a 2xx response into
        the result. Raises an ``APIError`` when every one failed."""
        try:
            return await self._group(call, use)
        except GroupFailed as failed:
            for group in self._fallbacks(call.group, failed.kind):
                if call.remaining() <= 0:
                    break
                log.warning("fallback for model %s: -> %s (%s)", call.label, group, failed.kind)
                self.metrics.fallbacks.labels(call.label, group, str(failed.kind)).inc()
                sub = Call(
                    group, call.path, call.body, call.started, call.deadline, stream=call.stream
                )
                try:
                    return await self._group(sub, use)
                except GroupFailed:
                    continue
            return failed.result()

    def _fallbacks(self, group: str, kind: Kind | None) -> tuple[str, ...]:
        router = self.router
        if kind is Kind.CONTEXT_LENGTH:
            groups = router.context_window_fallbacks.get(group, ())
        elif kind is Kind.CONTENT_POLICY:
            groups = router.content_policy_fallbacks.get(group, ())
        elif kind is Kind.HTTP_4XX or group.startswith("\x00"):
            groups = ()
        else:
            groups = router.fallbacks.get(group, router.default_fallbacks)
        return tuple(g for g in groups if g != group)[: router.max_fallbacks]

    async def _group(
        self,
        call: Call,
        use: Callable[[Call, Deployment, Exchange], Awaitable[Answer | Exchange]],
    ) -> Answer | Exchange:
        """Try one group's deployments, in passes; raise ``GroupFailed`` when none answers."""
        outcome = _Outcome()
        pending: list[tuple[str, str]] = []
        attempt_pass = 0
        while True:
            for deployment in self.registry.candidates(call.group):
                if deployment.id in call.tried:
                    continue
                call.tried.add(deployment.id)
                self._flush(pending, deployment.name, call.label)
                deadline = call.attempt_deadline = self._attempt_deadline(call, deployment)
                try:
                    sent = time.monotonic()
                    response = await self._send(call, deployment, deadline)
                    if response.status >= 400:
                        answer = await self._answer(call, deployment, response, deadline)
                        kind = http_kind(answer.status, answer.body)
                        if self._failed(
                            outcome, deployment, kind, f"HTTP {answer.status}", pending
                        ):
                            outcome.settle(blame=False)
                            raise GroupFailed(kind, answer, None)
                        if POLICY[kind].final is Final.ANSWER:
                            outcome.last_answer = answer
                            outcome.answered = True
                        continue
                    if self.registry.latency_based:
                        deployment.observe_latency(time.monotonic() - sent)
                    result = await use(call, deployment, response)
                except UpstreamError as exc:
                    kind = upstream_kind(exc)
                    if not self._failed(outcome, deployment, kind, str(exc), pending):
                        continue
                    self._flush(pending, "none", call.label)
                    outcome.settle(blame=False)
                    raise GroupFailed(kind, None, self._give_up(call, outcome)) from None
                except asyncio.CancelledError:  # the client went away
                    self.metrics.backend_requests.labels(deployment.name, "cancelled").inc()
                    raise
                outcome.settle(blame=True)
                deployment.succeed()
                self.metrics.backend_requests.labels(deployment.name, "ok").inc()
                return result
            if attempt_pass >= self._retries(call.group, outcome.last_kind, outcome.answered):
                break
            if call.remaining() <= 0:
                break
            attempt_pass += 1
            delay = max(self.router.retry_after, 0.05 * 2**attempt_pass)
            await asyncio.sleep(min(delay, max(call.remaining(), 0)))
            call.tried.clear()
        self._flush(pending, "none", call.label)
        outcome.settle(blame=False)
        if outcome.last_answer is not None:
            raise GroupFailed(outcome.last_kind, outcome.last_answer, None)
        raise GroupFailed(outcome.last_kind, None, self._give_up(call, outcome))

    def _failed(
        self,
        outcome: _Outcome,
        deployment: Deployment,
        kind: Kind,
        detail: str,
        pending: list[tuple[str, str]],
    ) -> bool:
        """Apply the failure table to one failed attempt; True: answer the client now."""
        policy = POLICY[kind]
        then = policy.then
        if kind in outcome.seen and policy.again is not None:
            then = policy.again
            log.info("%s again on %s: the request is the cause; relayed", kind, deployment.name)
        outcome.seen.add(kind)
        outcome.last_kind = kind
        if policy.final is Final.TIMEOUT:
            outcome.timed_out = True
        elif policy.final is Final.UNAVAILABLE:
            outcome.reasons.append(f"{deployment.name}: {detail}")
        if then is Then.CLIENT:
            return True
        if policy.eject and deployment.backend is not None:
            deployment.backend.eject(detail)
        if policy.cooldown is Cooldown.YES or (policy.eject and deployment.backend is None):
            deployment.soft_fail(kind)
        elif policy.cooldown is Cooldown.DEFERRED:
            outcome.suspects.append((deployment, kind))
        self._failover(deployment, kind, pending)
        return False

    async def _answer(
        self, call: Call, deployment: Deployment, response: Exchange, deadline: float
    ) -> Answer:
        limit = min(self.read_timeout, max(deadline - time.monotonic(), 0.001))
        body = await response.read(limit)
        return Answer(
            deployment,
            response.status,
            body,
            response.header(b"content-type") or b"application/json",
            response.header(b"retry-after"),
            call.renames(deployment),
        )

    def _give_up(self, call: Call, outcome: _Outcome) -> APIError:
        if outcome.timed_out or call.remaining() <= 0:
            log.warning("no backend of model %s answered in time", call.label)
            return GatewayTimeout(
                f"No backend of model '{call.label}' answered in time.", code="upstream_timeout"
            )
        detail = "; ".join(outcome.reasons) or "every backend is out of rotation"
        log.warning("no backend of model %s is available: %s", call.label, detail)
        return ServiceUnavailable(
            f"No backend of model '{call.label}' is available.",
            code="no_backend_available",
            headers={"Retry-After": "1"},
        )

    async def complete(self, call: Call) -> Answer:
        """A non-streamed request: the whole answer of the first deployment that gives one."""

        async def read(sub: Call, deployment: Deployment, response: Exchange) -> Answer:
            return await self._answer(sub, deployment, response, sub.attempt_deadline)

        result = await self.attempt(call, read)
        assert isinstance(result, Answer)
        return result

    async def open_stream(self, call: Call) -> Opened | Answer:
        """A streamed request: the first deployment whose response head is 2xx, or the error."""
        chosen: list[tuple[Deployment, Renames]] = []

        async def keep(sub: Call, deployment: Deployment, response: Exchange) -> Exchange:
            chosen.append((deployment, sub.renames(deployment)))
            return response

        result = await self.attempt(call, keep)
        if isinstance(result, Answer):
            return result
        deployment, renames = chosen[0]
        return Opened(deployment, result, renames)
