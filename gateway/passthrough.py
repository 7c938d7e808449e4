"""Other P2 services through the gateway's port: a streaming pass-through proxy.

Operators can expose one port: RAG's management and query API (``/v1/rag/``,
``/index``) goes to ``RAG_URL``, the job service's (``/v1/jobs``,
``/v1/files``, ``/v1/segmentations``, ``/v1/fine_tuning``, and deleting a
fine-tuned model, ``DELETE /v1/models/{id}``) to ``JOBS_URL``.
The request body is streamed up as it arrives and refused with 413 as soon
as it passes the route's limit (``GATEWAY_MAX_UPLOAD_BYTES`` for file
uploads, ``GATEWAY_MAX_BODY_BYTES`` else); the response is streamed down as
it arrives. Nothing is buffered whole. The client's ``Authorization`` header
goes up unchanged, so the service enforces its own scopes (the gateway's key
check ran first). A client that goes away closes the upstream request.

Not the hot path: this uses httpx, not ``gateway.upstream``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.disconnect import ClientWatch, client_closed
from p2.core.errors import (
    BadRequest,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)

log = logging.getLogger("p2.gateway.passthrough")

RAG = "RAG_URL"
JOBS = "JOBS_URL"
_SERVICE_NAMES = {RAG: "The RAG service", JOBS: "The job service"}


@dataclass(frozen=True)
class ServiceRoute:
    """Requests for ``path`` (``prefix=True``: every path starting with it; else the path
    and everything below it) go to the service at ``setting``."""

    path: str
    setting: str
    uploads: bool = False  # bodies are files: GATEWAY_MAX_UPLOAD_BYTES, not MAX_BODY_BYTES
    prefix: bool = False
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")

    @property
    def templates(self) -> tuple[str, ...]:
        """The Starlette route paths serving this route."""
        if self.prefix:
            return (f"{self.path}{{path:path}}",)
        return (self.path, f"{self.path}/{{path:path}}")


# First match wins: the collection routes (document uploads) before the rest of RAG's API.
SERVICE_ROUTES = (
    ServiceRoute("/v1/rag/collections/", RAG, uploads=True, prefix=True),
    ServiceRoute("/v1/rag/", RAG, prefix=True),
    ServiceRoute("/index", RAG, uploads=True),
    ServiceRoute("/v1/jobs", JOBS),
    ServiceRoute("/v1/files", JOBS, uploads=True),
    ServiceRoute("/v1/segmentations", JOBS),
    ServiceRoute("/v1/fine_tuning", JOBS),
    ServiceRoute("/v1/models/", JOBS, prefix=True, methods=("DELETE",)),  # fine-tuned models
)

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself.
_REQUEST_DROPPED = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)
_RESPONSE_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "server",
        "date",
    }
)


class BodyTooLarge(Exception):
    """The client's body passed the route's limit while it was streamed up."""


class ClientLeft(Exception):
    """The client disconnected while its body was streamed up."""


def service_root(url: str) -> str:
    """A service URL may be given as its root or its ``/v1``; paths here start with ``/v1``."""
    return url.rstrip("/").removesuffix("/v1")


class ServiceProxy:
    """The pass-through routes' upstream client and their request handling."""

    def __init__(
        self,
        urls: dict[str, str | None],
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self.roots = {setting: service_root(url) if url else None for setting, url in urls.items()}
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout, pool=connect_timeout)
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def limit(self, route: ServiceRoute) -> int:
        return self.max_upload_bytes if route.uploads else self.max_body_bytes

    def endpoint(self, route: ServiceRoute) -> Callable[[Request], Awaitable[ASGIApp]]:
        """The Starlette endpoint of ``route``: its answer streams from the service."""

        async def endpoint(_: Request) -> ASGIApp:
            return functools.partial(self.forward, route)

        return endpoint

    async def forward(
        self, route: ServiceRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Raise ``APIError`` before the response starts; stream it once it has."""
        name = _SERVICE_NAMES[route.setting]
        root = self.roots.get(route.setting)
        if root is None:
            raise NotFound(
                f"{name} is not available through this gateway: {route.setting} is not set.",
                code="service_not_configured",
            )
        limit = self.limit(route)
        declared, has_body = _body_headers(scope)
        if declared is not None and declared > limit:
            raise _too_large(declared, limit)
        upload = _Upload(receive, limit) if has_body else None
        watch = None if upload is not None else ClientWatch(receive)
        request = self._http().build_request(
            scope["method"],
            _target(root, scope),
            headers=[(k, v) for k, v in scope["headers"] if k not in _REQUEST_DROPPED],
            content=upload.chunks() if upload is not None else None,
        )
        try:
            response = await self._http().send(request, stream=True)
        except asyncio.CancelledError:
            watch = watch or (upload.watch if upload is not None else None)
            if watch is not None and watch.claimed():
                await client_closed(send)  # it left while the service worked: request dropped
                return
            raise
        except BodyTooLarge:
            raise _too_large(None, limit) from None
        except ClientLeft:
            await client_closed(send)
            return
        except httpx.TimeoutException as exc:
            log.warning("%s %s: %s timed out (%r)", scope["method"], scope["path"], root, exc)
            raise GatewayTimeout(
                f"{name} did not answer in time.", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            log.warning("%s %s: %s failed: %r", scope["method"], scope["path"], root, exc)
            raise ServiceUnavailable(
                f"{name} is not available.",
                code="service_unavailable",
                headers={"Retry-After": "1"},
            ) from None
        # The service may answer before it read the whole body: the watch then drains the rest.
        watch = watch or (upload.watch if upload is not None else None) or ClientWatch(receive)
        try:
            await self._relay(response, watch, send)
        finally:
            await response.aclose()

    @staticmethod
    async def _relay(response: httpx.Response, watch: ClientWatch, send: Send) -> None:
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.multi_items()
            if k not in _RESPONSE_DROPPED
        ]
        try:
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if not watch.claimed():
                raise
            return  # the client went away; closing the response drops the upstream request
        except httpx.HTTPError as exc:  # the service broke off: the client sees a cut response
            watch.stop()
            log.warning("pass-through response broke off: %r", exc)
            raise
        watch.stop()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Upload:
    """The client's body as it arrives, refused as soon as it passes ``limit`` bytes;
    once it was read to its end, a ``ClientWatch`` takes over ``receive``."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.watch: ClientWatch | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientLeft
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise BodyTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.watch = ClientWatch(self.receive)
                return


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None if absent) and whether a body follows."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadRequest("Invalid Content-Length header.") from None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked or bool(declared)


def _target(root: str, scope: Scope) -> str:
    """The service URL for the request, its path as the client encoded it."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else str(scope["path"])
    query = scope.get("query_string", b"")
    return root + path + ("?" + query.decode("latin-1") if query else "")


def _too_large(declared: int | None, limit: int) -> PayloadTooLarge:
    size = f"is {declared} bytes" if declared is not None else "is over the limit"
    return PayloadTooLarge(
        f"The request body {size}; the limit for this route is {limit} bytes.",
        headers={"Connection": "close"},
    )
