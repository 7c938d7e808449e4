"""The hot-path client: keep-alive reuse and typed failures."""

from __future__ import annotations

import asyncio

import pytest

from gateway.upstream import ConnectError, FirstByteTimeoutError, Pool, get
from p2.core.process import free_port
from testkit.mock_openai import MockConfig, MockServer

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'


async def test_connections_are_reused_and_stale_ones_replaced() -> None:
    server = MockServer(MockConfig())
    port = await server.start()
    pool = Pool(f"http://127.0.0.1:{port}/v1")
    try:
        for _ in range(3):
            response = await pool.request(
                b"POST", "/v1/chat/completions", BODY, first_byte_timeout=5
            )
            assert response.status == 200
            await response.read(5)
        assert len(pool._idle) == 1
        server.drop_connections()  # the server closes the idle keep-alive connection
        await asyncio.sleep(0.05)
        response = await pool.request(b"POST", "/v1/chat/completions", BODY, first_byte_timeout=5)
        assert response.status == 200
        await response.read(5)
    finally:
        pool.close()
        await server.stop()


async def test_refused_and_hung_backends_raise_typed_errors() -> None:
    with pytest.raises(ConnectError):
        await Pool(f"http://127.0.0.1:{free_port()}/v1").request(
            b"POST", "/v1/completions", BODY, first_byte_timeout=1
        )
    server = MockServer(MockConfig(mode="hang"))
    port = await server.start()
    pool = Pool(f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(FirstByteTimeoutError):
            await pool.request(b"POST", "/v1/completions", BODY, first_byte_timeout=0.2)
        with pytest.raises(TimeoutError):
            await get(pool, "/health", 0.2)
    finally:
        pool.close()
        await server.stop()


def test_only_http_and_https_backends() -> None:
    with pytest.raises(ValueError, match="https://"):
        Pool("ftp://example.invalid/v1")
    assert Pool("https://example.invalid/v1").port == 443
