"""RAG's and the job service's APIs through the gateway's port: streamed both ways, scoped."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from gateway.config import GatewayConfig
from p2.core.process import free_port
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.gateway.conftest import ADMIN, ADMIN_KEY, AUTH, KEY, RunningGateway, running_gateway

UPLOAD_LIMIT = 256 * 1024


@dataclass
class Service:
    """What the upstream saw, and knobs the tests turn (threads: the server runs in its own)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    first_bytes: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    slow_closed: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def record(request: Request) -> JSONResponse:
            size, digest = 0, hashlib.sha256()
            async for chunk in request.stream():
                if chunk:
                    self.first_bytes.set()
                size += len(chunk)
                digest.update(chunk)
            seen = {
                "method": request.method,
                "path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "authorization": request.headers.get("authorization"),
                "content_type": request.headers.get("content-type"),
                "bytes": size,
                "sha256": digest.hexdigest(),
            }
            self.requests.append(seen)
            return JSONResponse(seen, status_code=201 if request.method == "POST" else 200)

        async def events(_: Request) -> StreamingResponse:
            async def body() -> Any:
                try:
                    yield b"data: first\n\n"
                    await asyncio.to_thread(self.release.wait, 10)
                    for i in range(1000):
                        yield f"data: {i}\n\n".encode()
                        await asyncio.sleep(0.01)
                finally:
                    self.stream_closed.set()

            return StreamingResponse(body(), media_type="text/event-stream")

        async def slow(request: Request) -> JSONResponse:
            await request.body()
            for _ in range(200):  # ten seconds of work, unless the caller hangs up
                if await request.is_disconnected():
                    self.slow_closed.set()
                    break
                await asyncio.sleep(0.05)
            return JSONResponse({"done": True})

        async def health(_: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        return Starlette(
            routes=[
                Route("/health", health, methods=["GET"]),  # the gateway's health checks
                Route("/v1/jobs/{job}/events", events, methods=["GET"]),
                Route("/v1/rag/slow", slow, methods=["POST"]),
                Route("/{path:path}", record, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
            ]
        )


@pytest.fixture
def rag() -> Iterator[Service]:
    service = Service()
    with ThreadServer(service.app(), timeout_graceful_shutdown=1) as server:
        service.url = server.url
        yield service


@pytest.fixture
def jobs() -> Iterator[Service]:
    service = Service()
    with ThreadServer(service.app(), timeout_graceful_shutdown=1) as server:
        service.url = server.url
        yield service


@pytest.fixture
def gateway(config: GatewayConfig, rag: Service, jobs: Service) -> Iterator[RunningGateway]:
    with running_gateway(
        config,
        rag_url=f"{rag.url}/v1",
        jobs_url=jobs.url,
        max_upload_bytes=UPLOAD_LIMIT,
    ) as running:
        yield running


def test_user_reads_go_up_with_the_clients_key_path_and_query(
    gateway: RunningGateway, rag: Service
) -> None:
    response = httpx.get(f"{gateway.base}/rag/collections/a%20b/documents?limit=5", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["authorization"] == f"Bearer {KEY}"
    assert response.json()["path"] == "/v1/rag/collections/a%20b/documents"
    assert response.json()["query"] == "limit=5"
    query = httpx.post(f"{gateway.base}/rag/query", headers=AUTH, json={"query": "x"})
    assert query.status_code == 201 and query.json()["bytes"] == len(b'{"query":"x"}')
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'route="/v1/rag/collections/{path:path}",status="200"' in metrics


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/rag/collections/handbook/documents"),
        ("DELETE", "/v1/rag/collections/handbook"),
        ("DELETE", "/v1/rag/collections/handbook/documents/ports.md"),
        ("POST", "/index?collection=handbook"),
    ],
)
def test_rag_writes_need_an_admin_key(
    gateway: RunningGateway, rag: Service, method: str, path: str
) -> None:
    url = f"{gateway.url}{path}"
    refused = httpx.request(method, url, headers=AUTH, content=b"x")
    assert_openai_error(refused, 403, code="insufficient_scope")
    assert rag.requests == []
    allowed = httpx.request(method, url, headers=ADMIN, content=b"x")
    assert allowed.status_code in (200, 201)
    assert rag.requests[0]["authorization"] == f"Bearer {ADMIN_KEY}"


def test_an_upload_streams_up_as_it_arrives(gateway: RunningGateway, rag: Service) -> None:
    parts = [b"--b\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\n"]
    parts += [bytes([i]) * 16384 for i in range(12)] + [b"\r\n--b--\r\n"]
    streamed = []

    def body() -> Iterator[bytes]:
        yield parts[0] + parts[1]
        # The upstream has bytes before the client sent the rest: nothing buffers whole.
        streamed.append(rag.first_bytes.wait(10))
        yield from parts[2:]

    response = httpx.post(
        f"{gateway.url}/v1/rag/collections/handbook/documents",
        headers={**ADMIN, "content-type": "multipart/form-data; boundary=b"},
        content=body(),
        timeout=30,
    )
    assert response.status_code == 201
    assert streamed == [True]
    seen = response.json()
    assert seen["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert seen["content_type"] == "multipart/form-data; boundary=b"


def test_an_upload_over_the_limit_is_413(gateway: RunningGateway, rag: Service) -> None:
    url = f"{gateway.url}/v1/rag/collections/handbook/documents"
    declared = httpx.post(url, headers=ADMIN, content=b"x" * (UPLOAD_LIMIT + 1))
    assert_openai_error(declared, 413, contains=str(UPLOAD_LIMIT))
    assert rag.requests == []  # refused by its Content-Length before anything went up

    def chunked() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * (UPLOAD_LIMIT // 4)

    counted = httpx.post(url, headers=ADMIN, content=chunked(), timeout=30)
    assert_openai_error(counted, 413, contains=str(UPLOAD_LIMIT))
    assert rag.requests == []  # the service never got a whole request


def test_other_routes_keep_the_smaller_body_limit(config: GatewayConfig, rag: Service) -> None:
    with running_gateway(config, rag_url=rag.url, max_body_bytes=1000) as gw:
        big = httpx.post(f"{gw.base}/rag/query", headers=AUTH, content=b"{" + b" " * 2000 + b"}")
    assert_openai_error(big, 413)


def test_a_response_streams_down_as_it_arrives(gateway: RunningGateway, jobs: Service) -> None:
    with httpx.stream(
        "GET", f"{gateway.base}/jobs/job-1/events", headers=AUTH, timeout=20
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == "data: first"  # before the service was allowed to go on
        jobs.release.set()
        assert next(line for line in lines if line) == "data: 0"
    assert jobs.stream_closed.wait(5)  # the client left: the upstream stream was closed


def test_a_client_leaving_while_the_service_works_drops_the_request(
    gateway: RunningGateway, rag: Service
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.base}/rag/slow", headers=AUTH, json={"query": "x"}, timeout=0.5)
    assert rag.slow_closed.wait(5)
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'route="/v1/rag/{path:path}",status="499"' in metrics


def test_job_routes_without_jobs_url_are_404_naming_it(config: GatewayConfig) -> None:
    with running_gateway(config) as gw:
        for path in ("/v1/jobs", "/v1/files/file-1", "/v1/segmentations", "/v1/fine_tuning/jobs"):
            response = httpx.get(f"{gw.url}{path}", headers=AUTH)
            assert_openai_error(response, 404, code="service_not_configured", contains="JOBS_URL")
        rag = httpx.get(f"{gw.base}/rag/collections", headers=AUTH)
        assert_openai_error(rag, 404, contains="RAG_URL")


def test_a_service_down_is_503_without_its_address(config: GatewayConfig) -> None:
    port = free_port()
    with running_gateway(config, rag_url=f"http://127.0.0.1:{port}") as gw:
        response = httpx.get(f"{gw.base}/rag/collections", headers=AUTH)
    error = assert_openai_error(response, 503, code="service_unavailable")
    assert error["message"] == "The RAG service is not available."
    assert str(port) not in response.text
