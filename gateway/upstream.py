"""A small, pooled HTTP/1.1 client for the hot path (asyncio protocol + httptools).

Why not httpx: the gateway's CPU budget per request is about a millisecond for
everything, and a general-purpose client spends most of it on features the
gateway never uses. This client does exactly one thing: POST/GET a body to a
backend over keep-alive connections, then hand back the status and either the
whole body or its chunks as they arrive. Failures are typed (see the
``UpstreamError`` tree) because each one drives a different failover decision.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools


class UpstreamError(Exception):
    """Talking to a backend failed; ``reason`` is the label used in logs and metrics."""

    reason = "error"


class ConnectError(UpstreamError):
    """The backend refused the connection or could not be reached."""

    reason = "connect"


class DisconnectError(UpstreamError):
    """The backend closed or reset the connection before the response was complete."""

    reason = "reset"


class FirstByteTimeoutError(UpstreamError):
    """The backend accepted the request but sent no response head in time."""

    reason = "first_byte_timeout"


class ReadTimeoutError(UpstreamError):
    """The backend stopped sending in the middle of a response."""

    reason = "read_timeout"


class AbortedError(UpstreamError):
    """The gateway dropped the exchange: its backend failed a health check and this
    exchange received nothing while the check ran."""

    reason = "ejected"


class ProtocolError(UpstreamError):
    """The backend's bytes are not valid HTTP."""

    reason = "protocol"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses responses as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.reads = 0  # pieces received over the connection's life: progress, for probes
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.received = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.reads += 1
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = ProtocolError(f"invalid HTTP from backend: {exc}")
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = DisconnectError("backend closed the connection")
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # only valid before the body
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # helpers
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wait(self, limit: float, on_timeout: type[UpstreamError]) -> None:
        """Sleep until bytes arrive or the connection ends; ``on_timeout`` after ``limit`` s."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        handle = self.loop.call_later(limit, _expire, waiter)
        try:
            woken = await waiter
        finally:
            handle.cancel()
            self.waiter = None
        if not woken:
            raise on_timeout(f"no data from backend within {limit:.3g}s")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.keep_alive


class _Patience:
    """How long to wait for a response head, and what to do when that runs out."""

    def __init__(
        self,
        first_byte_timeout: float,
        still_alive: Callable[[], Awaitable[bool]] | None,
        deadline: float | None,
    ) -> None:
        self.first_byte_timeout = first_byte_timeout
        self.still_alive = still_alive
        self.deadline = deadline
        self.extended = False

    async def extend(self) -> float:
        """Called on each timeout waiting for the head: the next wait, or raise."""
        if self.extended:
            raise ReadTimeoutError("no answer from the backend within the request timeout")
        if self.still_alive is None or self.deadline is None:
            raise FirstByteTimeoutError(f"no answer within {self.first_byte_timeout:.3g}s")
        if not await self.still_alive():
            raise FirstByteTimeoutError(
                f"no answer within {self.first_byte_timeout:.3g}s and /health unresponsive"
            )
        self.extended = True
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ReadTimeoutError("no answer from the backend within the request timeout")
        return left


def _drain(chunks: collections.deque[bytes]) -> bytes:
    data = b"".join(chunks)
    chunks.clear()
    return data


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Exchange(Protocol):
    """A backend's answer as the forwarding code uses it: an HTTP ``Response``, or a
    native provider's answer re-framed by ``gateway.adapter``."""

    status: int
    on_release: Callable[[], None] | None

    def header(self, name: bytes) -> bytes | None: ...

    async def read(self, idle: float) -> bytes: ...

    def iter_chunks(self, idle: float) -> AsyncIterator[bytes]: ...

    def abort(self) -> None: ...

    def release(self) -> None: ...


class Response:
    """A backend's response: status and headers now, body on demand."""

    def __init__(self, pool: Pool, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self._released = False
        self.on_release: Callable[[], None] | None = None  # once, when the exchange ends

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self, idle: float) -> bytes:
        """The whole body; ``idle`` bounds each wait for more bytes."""
        conn = self._conn
        try:
            while not conn.complete:
                await conn.wait(idle, ReadTimeoutError)
            return b"".join(conn.chunks)
        finally:
            self.release()

    async def iter_chunks(self, idle: float) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (de-chunked; what arrived together comes as one piece)."""
        conn = self._conn
        try:
            while True:
                if conn.chunks:  # everything that arrived so far, as one piece
                    chunks = conn.chunks
                    yield chunks.popleft() if len(chunks) == 1 else _drain(chunks)
                    continue
                if conn.complete:
                    return
                await conn.wait(idle, ReadTimeoutError)
        finally:
            self.release()

    def abort(self) -> None:
        """Drop the connection now (the client went away): the backend stops generating."""
        self._conn.close()

    def release(self) -> None:
        """Return the connection to the pool if it can carry another request, else close it."""
        if self._released:
            return
        self._released = True
        self._pool.put(self._conn)
        if self.on_release is not None:
            self.on_release()


Marks = dict[_Connection, int]


def tls_context(verify: bool | str = True) -> ssl.SSLContext:
    """Certificates checked against the system's CAs (or ``verify``, a CA bundle), or not at all."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class Pool:
    """Keep-alive connections to one backend (``base_url`` like ``http://host:port/v1``, or
    ``https://...``: TLS with ``tls``, by default the system's CAs)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 2.0,
        max_idle: int = 512,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"only http:// and https:// backends are supported, not {base_url!r}")
        self.host = parts.hostname
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self.tls = (tls or tls_context()) if secure else None
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = self.port == (443 if secure else 80)
        self._host_header = (host if default else f"{host}:{self.port}").encode()
        self._idle: collections.deque[_Connection] = collections.deque()
        self._busy: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except TimeoutError as exc:
            raise ConnectError(f"connect to {self.host}:{self.port} timed out") from exc
        except ssl.SSLError as exc:  # a certificate that does not verify, or no TLS at all
            raise ConnectError(f"TLS with {self.host}:{self.port} failed: {exc}") from exc
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return proto

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.error is None:
                return conn
        return None

    def put(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn.reusable() and len(self._idle) < self.max_idle:
            conn.reset()
            self._idle.append(conn)
        else:
            conn.close()

    def _head(self, method: bytes, path: str, body_len: int, extra: bytes) -> bytes:
        return b"".join(
            (
                method,
                b" ",
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                self._host_header,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(body_len).encode(),
                b"\r\n",
                extra,
                b"\r\n",
            )
        )

    async def request(
        self,
        method: bytes,
        path: str,
        body: bytes,
        *,
        first_byte_timeout: float,
        extra_headers: bytes = b"",
        still_alive: Callable[[], Awaitable[bool]] | None = None,
        deadline: float | None = None,
    ) -> Response:
        """Send a request for ``path`` (absolute); return once the response head arrived.

        ``extra_headers`` is pre-encoded ``Name: value\\r\\n`` lines. With no
        head after ``first_byte_timeout``, ``still_alive()`` decides: False
        raises ``FirstByteTimeoutError``; True waits on until ``deadline``
        (monotonic), then raises ``ReadTimeoutError``. A reused connection the
        server closed before answering is retried once on a fresh one, which
        is always safe: the backend never saw the request.
        """
        payload = self._head(method, path, len(body), extra_headers) + body
        patience = _Patience(first_byte_timeout, still_alive, deadline)
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, payload, patience)
            except DisconnectError:
                if conn.received:
                    raise
        return await self._exchange(await self._connect(), payload, patience)

    async def _exchange(self, conn: _Connection, payload: bytes, patience: _Patience) -> Response:
        assert conn.transport is not None
        self._busy.add(conn)
        conn.transport.write(payload)
        timeout = patience.first_byte_timeout
        try:
            while not conn.head_done:
                try:
                    await conn.wait(timeout, FirstByteTimeoutError)
                except FirstByteTimeoutError:
                    timeout = await patience.extend()
        except BaseException:
            self._busy.discard(conn)
            conn.close()
            raise
        return Response(self, conn)

    def marks(self) -> Marks:
        """The exchanges in flight and how much each has received: a health check's baseline."""
        return {conn: conn.reads for conn in self._busy}

    @staticmethod
    def flowing(marks: Marks) -> bool:
        """Whether any exchange of ``marks`` received bytes since they were taken."""
        return any(conn.reads != reads for conn, reads in marks.items())

    def abort_stalled(self, marks: Marks, why: str) -> int:
        """Fail the exchanges of ``marks`` still in flight that received nothing since
        (the backend is hung or gone); exchanges that receive bytes are left alone."""
        stalled = [c for c, reads in marks.items() if c in self._busy and c.reads == reads]
        for conn in stalled:
            self._busy.discard(conn)
            if conn.error is None:
                conn.error = AbortedError(why)
            conn.close()
            conn._wake()
        return len(stalled)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


async def get(pool: Pool, path: str, limit: float, headers: bytes = b"") -> tuple[int, bytes]:
    """A one-shot GET (health checks); the whole exchange is bounded by ``limit`` seconds."""
    async with asyncio.timeout(limit):
        response = await pool.request(
            b"GET", path, b"", first_byte_timeout=limit, extra_headers=headers
        )
        return response.status, await response.read(limit)
