"""RAG's error answers name the problem, never an address, a port or an exception's repr."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.testclient import TestClient

from p2.core.process import free_port
from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.fake_qdrant import fake_qdrant_app

DOCS = {"documents": [{"id": "tides.txt", "text": "Spring tides follow the new and full moon."}]}
ASK = {"collection": "kb", "messages": [{"role": "user", "content": "When are spring tides?"}]}
INTERNAL = "No backend of model 'chat' is available (10.1.2.3:8001: cannot connect: errno 111)"


def assert_nothing_internal(text: str, *ports: int) -> None:
    for needle in ("127.0.0.1", "10.1.2.3", "localhost", "errno", "Error(", "Traceback", "http"):
        assert needle not in text, (needle, text)
    for port in ports:
        assert str(port) not in text, (port, text)


def broken_gateway_app() -> FastAPI:
    """A gateway whose failures carry internals, as a careless one would send them."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> Response:
        if not body.get("stream"):
            return JSONResponse({"error": {"message": INTERNAL, "type": "api_error"}}, 503)

        async def events() -> Any:
            error = {"message": INTERNAL, "type": "api_error", "code": "upstream_failed"}
            yield b'data: {"error": ' + httpx.Response(200, json=error).content + b"}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture
def broken_gateway() -> Iterator[ThreadServer]:
    server = ThreadServer(broken_gateway_app()).start()
    yield server
    server.stop()


def test_dependencies_down_are_named_not_located(
    make_settings: Callable[..., RagSettings], tmp_path: Path, fast_embedding: ThreadServer
) -> None:
    dead = free_port()
    settings = make_settings(
        embedding_url=fast_embedding.url, gateway_url=f"http://127.0.0.1:{dead}"
    )
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        assert client.post("/index?collection=kb", json=DOCS).status_code == 200
        down = client.post("/v1/rag/chat", json=ASK)
    assert_openai_error(down, 503, code="gateway_unavailable", contains="gateway")
    assert_nothing_internal(down.text, dead)

    settings = make_settings(
        embedding_url=f"http://127.0.0.1:{dead}", embed_max_retries=0, qdrant_path=tmp_path / "q2"
    )
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        refused = client.post("/index?collection=kb", json=DOCS)
    assert_openai_error(refused, 503, code="embedding_unavailable", contains="embedding")
    assert_nothing_internal(refused.text, dead)


def test_a_qdrant_server_down_or_refusing_is_named_not_located(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    dead = free_port()
    settings = make_settings(qdrant_url=f"http://127.0.0.1:{dead}", qdrant_max_retries=0)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        down = client.get("/v1/rag/collections")
    assert_openai_error(down, 503, code="qdrant_unavailable", contains="vector store")
    assert_nothing_internal(down.text, dead)

    qdrant = ThreadServer(fake_qdrant_app()).start()
    try:
        settings = make_settings(qdrant_url=qdrant.url, qdrant_max_retries=0)
        app = create_app(settings, CoreSettings(home=tmp_path))
        with TestClient(app) as client:
            while not app.state.repair.done():  # the start-up check reads the store too
                time.sleep(0.01)
            qdrant.app.state.fail_next = [400]
            refused = client.get("/v1/rag/collections")
    finally:
        qdrant.stop()
    assert_openai_error(refused, 400, code="qdrant_refused")
    assert_nothing_internal(refused.text, qdrant.port)
    assert "injected" not in refused.text


def test_a_gateway_s_internal_errors_are_not_passed_on(
    make_settings: Callable[..., RagSettings],
    tmp_path: Path,
    fast_embedding: ThreadServer,
    broken_gateway: ThreadServer,
) -> None:
    settings = make_settings(embedding_url=fast_embedding.url, gateway_url=broken_gateway.url)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        client.post("/index?collection=kb", json=DOCS)
        failed = client.post("/v1/rag/chat", json=ASK)
        streamed = client.post("/v1/rag/chat", json={**ASK, "stream": True})
    assert_openai_error(failed, 502, code="gateway_error", contains="HTTP 503")
    assert_nothing_internal(failed.text, broken_gateway.port)
    assert streamed.status_code == 200
    assert '"code":"upstream_failed"' in streamed.text.replace(" ", "")
    assert_nothing_internal(streamed.text, broken_gateway.port)
