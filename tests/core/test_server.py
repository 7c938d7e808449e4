"""The hardened server: slow or silent clients lose their connection instead of holding it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from p2.core.process import free_port
from p2.core.server import ServerSettings, server_config

GUARD = ServerSettings(header_timeout=0.5, body_timeout=0.5, write_timeout=0.5, idle_timeout=1)
stream_stopped = threading.Event()


async def hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


async def firehose(_: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: " + b"x" * 65536 + b"\n\n"
                await asyncio.sleep(0)
        finally:
            stream_stopped.set()

    return StreamingResponse(chunks(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", firehose),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        server_config(app, host="127.0.0.1", port=port, log_level="warning", guard=GUARD)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_a_normal_request_and_keep_alive_work(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            answer = b""
            while not answer.endswith(b"hello"):
                answer += sock.recv(4096) or pytest.fail(f"closed after {answer!r}")
            time.sleep(0.7)  # longer than the header deadline: idle between requests is fine


def test_a_silent_client_is_dropped(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert _closed_within(sock, 3)


def test_slowloris_headers_are_dropped_even_while_bytes_trickle_in(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        with pytest.raises(OSError):
            while time.monotonic() - started < 5:
                sock.sendall(b"X-Slow: y\r\n")
                time.sleep(0.1)
                sock.settimeout(0.01)
                try:
                    if sock.recv(1) == b"":
                        raise ConnectionResetError
                except TimeoutError:
                    pass
        assert time.monotonic() - started < 3


def test_a_body_that_never_finishes_is_dropped(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        assert _closed_within(sock, 3)


def test_a_client_that_stops_reading_a_stream_is_dropped_and_the_stream_stops(
    port: int,
) -> None:
    stream_stopped.clear()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream_stopped.wait(10), "the server kept streaming to a client that never reads"


def test_an_open_server_is_allowed_on_loopback_only() -> None:
    from p2.core.keys import Keyring
    from p2.core.server import check_exposure
    from p2.core.settings import SettingsError

    open_ring, keyed = Keyring(), Keyring(users=["sk-u"])
    assert check_exposure("gateway", "0.0.0.0", keyed, allow_open=False) is None
    warning = check_exposure("gateway", "127.0.0.1", open_ring, allow_open=False)
    assert warning is not None and "no API keys" in warning
    with pytest.raises(SettingsError, match="P2_ALLOW_OPEN=1"):
        check_exposure("gateway", "0.0.0.0", open_ring, allow_open=False)
    assert "NO API keys" in (check_exposure("rag", "10.0.0.5", open_ring, allow_open=True) or "")
