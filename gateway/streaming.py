"""Relaying a backend's SSE stream to the client, continuing it elsewhere if the backend dies.

Only whole events are forwarded (split on the blank line), so a backend dying
mid-event never leaves half an event with the client. If the upstream breaks
off before ``data: [DONE]``, the relay asks the next backend for the rest (see
``gateway.continuation``) and carries on in the same client response. Only
when no backend can continue does the stream end with an OpenAI error event.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gateway.backends import Deployment, rename
from gateway.continuation import (
    CannotContinue,
    Progress,
    Rewriter,
    continuation_body,
    progress,
)
from gateway.disconnect import ClientWatch
from gateway.failures import POLICY, Cooldown, upstream_kind
from gateway.forwarding import Answer, Call, Forwarder, Opened
from gateway.metrics import GatewayMetrics
from gateway.upstream import DisconnectError, Exchange, UpstreamError
from p2.core.errors import APIError, error_body
from p2.core.sse import DONE, DONE_MARK, sse, sse_error

log = logging.getLogger("p2.gateway.streaming")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_ERROR_EVENT = b'data: {"error"'  # OpenAI's; llama-server also sends `error: {...}` events


class UpstreamStreamError(UpstreamError):
    """The backend put an error event into its stream."""

    reason = "stream_error"


def answer_error_event(answer: Answer) -> bytes:
    """An upstream error answer as one SSE error event (its own body if it is OpenAI's)."""
    try:
        payload: Any = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        payload = None
    if not (isinstance(payload, dict) and isinstance(payload.get("error"), dict)):
        payload = error_body(
            f"backend answered HTTP {answer.status}", "api_error", code=answer.status
        )
    return sse(payload)


class StreamRelay:
    """An ASGI response: one client stream, fed by one or more backends in turn."""

    def __init__(
        self,
        forwarder: Forwarder,
        metrics: GatewayMetrics,
        call: Call,
        opened: Opened,
        idle_timeout: float,
        watch: ClientWatch,
    ) -> None:
        self.forwarder = forwarder
        self.metrics = metrics
        self.call = call
        self.deployment: Deployment = opened.deployment
        self.response: Exchange = opened.response
        self.renames = opened.renames
        self.idle_timeout = idle_timeout
        self.chat = call.path == "/chat/completions"
        self.client_gone = False
        self._watch = watch
        self._done = False
        self._state = Progress()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._watch.on_gone = self._client_left
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        try:
            await self._relay(send)
        finally:
            self._watch.stop()
            self.response.release()
        if not self.client_gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _client_left(self) -> None:
        """The client disconnected (or the server dropped it for not reading): drop the
        upstream connection, so the backend stops generating and frees its slot."""
        self.client_gone = True
        self.response.abort()

    async def _relay(self, send: Send) -> None:
        sent: list[bytes] = []
        rewrite: Rewriter | None = None
        while True:
            try:
                await self._pump(send, sent, rewrite)
                break
            except UpstreamError as exc:
                if self._done or self.client_gone:
                    break  # everything the client needs was sent; only the tail broke
                if not await self._continue(exc, sent, send):
                    return
                if self.client_gone:  # left while the next backend was found
                    self.response.abort()
                    break
                rewrite = Rewriter(self._state, self.chat)
        deployment = self.deployment
        deployment.succeed()
        outcome = "cancelled" if self.client_gone and not self._done else "ok"
        self.metrics.backend_requests.labels(deployment.name, outcome).inc()
        marker = b'"content":"' if self.chat else b'"text":"'
        tokens = sum(out.count(marker) for out in sent)
        self.metrics.tokens.labels(self.call.label, "completion").inc(tokens)
        deployment.add_tokens(tokens)

    async def _pump(self, send: Send, sent: list[bytes], rewrite: Rewriter | None) -> None:
        """Forward the current backend's whole events until ``[DONE]``; raise if it breaks off."""
        buf = b""
        idle = self.deployment.stream_timeout or self.idle_timeout
        async for chunk in self.response.iter_chunks(idle):
            buf += chunk
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            out, buf = buf[: cut + 2], buf[cut + 2 :]
            if _ERROR_EVENT in out or out.startswith(b"error:") or b"\n\nerror:" in out:
                raise UpstreamStreamError(out.decode("utf-8", "replace").strip()[:200])
            if DONE_MARK in out:
                self._done = True
            if self.renames:
                out = rename(out, self.renames)
            if rewrite is not None:
                out = rewrite(out)
                if not out:
                    continue
            if not sent:
                self.metrics.ttft.labels(self.call.label).observe(
                    time.monotonic() - self.call.started
                )
            sent.append(out)
            await send({"type": "http.response.body", "body": out, "more_body": True})
        if not self._done:
            raise DisconnectError("the stream ended before data: [DONE]")

    async def _continue(self, exc: UpstreamError, sent: list[bytes], send: Send) -> bool:
        """Switch to the next backend after ``exc``; False if the stream had to end instead."""
        dead = self.deployment
        reason = upstream_kind(exc, midstream=True)
        policy = POLICY[reason]
        if policy.eject and dead.backend is not None:
            dead.backend.eject(f"stream broke off: {exc}")
        if policy.cooldown is Cooldown.YES or (policy.eject and dead.backend is None):
            dead.soft_fail(reason)
        self.metrics.backend_errors.labels(dead.name, reason).inc()
        self.metrics.backend_requests.labels(dead.name, "error").inc()
        self.response.release()
        state = progress(sent, self.chat)
        self._state = state
        if state.finished:
            await send({"type": "http.response.body", "body": DONE, "more_body": True})
            return False
        call = self.call
        try:
            body = continuation_body(call.body, state, self.chat)
            result = await self.forwarder.open_stream(
                Call(
                    call.group,
                    call.path,
                    body,
                    call.started,
                    call.deadline,
                    call.tried,
                    call.target,
                    stream=True,
                )
            )
        except CannotContinue as err:
            return await self._fail(
                send,
                dead.name,
                reason,
                sse_error(
                    f"The backend failed mid-stream and {err}.", "api_error", "stream_interrupted"
                ),
            )
        except APIError as err:
            return await self._fail(
                send,
                dead.name,
                reason,
                sse_error(
                    f"The backend failed mid-stream and no other backend could continue: "
                    f"{err.message}",
                    err.error_type,
                    "stream_interrupted",
                ),
            )
        if isinstance(result, Answer):
            return await self._fail(send, dead.name, reason, answer_error_event(result))
        self.deployment, self.response, self.renames = (
            result.deployment,
            result.response,
            result.renames,
        )
        to = self.deployment.name
        log.warning(
            "failover for model %s mid-stream: %s -> %s (%s, %d chars sent)",
            call.label,
            dead.name,
            to,
            reason,
            len(state.text),
        )
        self.metrics.failovers.labels(dead.name, to, reason).inc()
        self.metrics.continuations.labels(call.label, "continued").inc()
        return True

    async def _fail(self, send: Send, dead: str, reason: str, event: bytes) -> bool:
        log.error(
            "stream of model %s broke off on %s (%s); no backend could continue",
            self.call.label,
            dead,
            reason,
        )
        self.metrics.failovers.labels(dead, "none", reason).inc()
        self.metrics.continuations.labels(self.call.label, "failed").inc()
        if not self.client_gone:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": event + DONE, "more_body": True})
        return False
