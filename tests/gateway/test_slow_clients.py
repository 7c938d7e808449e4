"""Clients that stop reading or leave: the backend request is dropped, its slot freed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from p2.core.server import GuardedHttpTools, ServerSettings
from tests.gateway.conftest import AUTH, KEY, RunningGateway, make_config, running_gateway
from tests.gateway.upstreams import ScriptedBackend, serve


def guarded(write_timeout: float) -> type[GuardedHttpTools]:
    """The server protocol every P2 service runs, with a short write timeout."""
    guard = ServerSettings.build(write_timeout=write_timeout)

    class Protocol(GuardedHttpTools):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, guard=guard, **kwargs)

    return Protocol


@pytest.fixture
def backend() -> Iterator[ScriptedBackend]:
    scripted = ScriptedBackend(model="chat")
    server = serve(scripted)
    try:
        yield scripted
    finally:
        server.stop()


@pytest.fixture
def gateway(backend: ScriptedBackend) -> Iterator[RunningGateway]:
    config = make_config({"chat": [(backend.url, "chat")]})
    with running_gateway(config, {"http": guarded(0.5)}) as running:
        yield running


def busy_connections(gateway: RunningGateway) -> int:
    return sum(len(b.pool._busy) for b in gateway.app.state.registry.backends.values())


def metric(gateway: RunningGateway, name: str, *labels: str) -> float:
    for entry in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if entry.startswith(name + "{") and all(label in entry for label in labels):
            return float(entry.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_stops_reading_a_stream_frees_the_backend(
    gateway: RunningGateway, backend: ScriptedBackend
) -> None:
    backend.chunks, backend.pad = 1_000_000, 4096  # gigabytes of stream, as fast as it goes
    body = orjson.dumps(
        {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    port = int(gateway.url.rsplit(":", 1)[1])
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    try:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()  # and now the client never reads again
        assert backend.closed.wait(20), "the backend stream was never closed"
        assert backend.closed_at - started < 10
    finally:
        client.close()
    deadline = time.monotonic() + 5
    while busy_connections(gateway) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert busy_connections(gateway) == 0


def test_a_non_streamed_client_leaving_cancels_its_generation(
    gateway: RunningGateway, backend: ScriptedBackend
) -> None:
    backend.reply_delay = 30.0  # a long generation
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=0.3)
    assert backend.closed.wait(5), "the backend kept generating for a client that left"
    assert backend.closed_at - started < 2
    assert busy_connections(gateway) == 0
    requests = metric(gateway, "p2_gateway_requests_total", '"/v1/chat/completions"', '"499"')
    assert requests == 1
    assert metric(gateway, "p2_gateway_backend_requests_total", 'outcome="cancelled"') == 1
    backend.reply_delay = 0.0
    response = httpx.post(f"{gateway.base}/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200  # the next request is served as usual
