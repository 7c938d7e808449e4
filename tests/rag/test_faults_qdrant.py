"""Real network faults between RAG and a Qdrant server (``QDRANT_URL``).

RAG talks REST through qdrant-client to a TCP proxy in front of a Qdrant REST
stand-in (see ``fake_qdrant``). Refused, reset and stalled connections, 503s and
429s are retried and counted; a 4xx fails fast; indexing ends exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS
from tests.rag.fake_qdrant import fake_qdrant_app
from tests.rag.faultproxy import FaultProxy
from tests.rag.test_faults_embedding import OVERLAP, SIZE, assert_exactly_once


@pytest.fixture
def qdrant() -> Iterator[tuple[ThreadServer, FaultProxy]]:
    server = ThreadServer(fake_qdrant_app()).start()
    proxy = FaultProxy(server.port)
    yield server, proxy
    proxy.close()
    server.stop()


def _retries(client: TestClient) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("p2_rag_retries_total{") and 'target="qdrant"' in line
    )


def test_server_path_rides_out_network_faults(
    make_settings: Callable[..., RagSettings],
    qdrant: tuple[ThreadServer, FaultProxy],
    tmp_path: Path,
) -> None:
    server, proxy = qdrant
    settings = make_settings(
        qdrant_url=proxy.url,
        qdrant_timeout=1,
        qdrant_max_retries=10,
        qdrant_retry_min_wait=0.1,
        qdrant_retry_max_wait=0.5,
        chunk_size=SIZE,
        chunk_overlap=OVERLAP,
    )
    app = create_app(settings, CoreSettings(home=tmp_path))
    with TestClient(app) as client:
        proxy.plan = ["reset", "stall", "reset"]
        server.app.state.fail_next = [503, 429, 502]
        proxy.set_mode("refuse")
        threading.Timer(0.3, proxy.set_mode, args=("pass",)).start()
        for name, text in DOCS.items():
            body = {"documents": [{"id": name, "text": text}]}
            response = client.post("/v1/rag/collections/kb/documents", json=body)
            assert response.status_code == 200, response.text
            # Cut the pooled connections between documents: each fault hits a new one.
            proxy.plan = ["reset"]
            proxy.set_mode("pass")
        assert_exactly_once(app.state.store, "kb")
        assert _retries(client) >= 6
        results = client.post(
            "/v1/rag/query", json={"collection": "kb", "query": "nine bars of pressure"}
        ).json()["results"]
        assert results[0]["document_id"] == "espresso.md"
    assert proxy.seen["stall"] == 1 and proxy.seen["reset"] >= 2


def test_server_4xx_fails_fast_and_keeps_data(
    make_settings: Callable[..., RagSettings],
    qdrant: tuple[ThreadServer, FaultProxy],
    tmp_path: Path,
) -> None:
    server, proxy = qdrant
    settings = make_settings(qdrant_url=proxy.url, qdrant_timeout=1)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        body = {"documents": [{"id": "a", "text": "Tides follow the moon."}]}
        assert client.post("/v1/rag/collections/kb/documents", json=body).status_code == 200
        server.app.state.fail_next = [400]
        refused = client.post("/v1/rag/query", json={"collection": "kb", "query": "moon"})
        assert_openai_error(refused, 400, contains="The vector store refused the request")
        assert _retries(client) == 0
        again = client.post("/v1/rag/query", json={"collection": "kb", "query": "moon"})
        assert again.json()["results"][0]["document_id"] == "a"
        listing = client.get("/v1/rag/collections").json()["data"]
        assert listing == [
            {"name": "kb", "documents": 1, "chunks": 1, "embedding_model": "all-MiniLM-L6-v2"}
        ]


def test_readiness_names_an_unreachable_qdrant_server_and_liveness_stays(
    make_settings: Callable[..., RagSettings],
    qdrant: tuple[ThreadServer, FaultProxy],
    tmp_path: Path,
) -> None:
    _, proxy = qdrant
    settings = make_settings(qdrant_url=proxy.url, qdrant_timeout=1)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        assert client.get("/health/ready").status_code == 200
        proxy.set_mode("refuse")
        response = client.get("/health/ready")
        live = client.get("/health")
    assert response.status_code == 503
    assert response.json()["unavailable"] == ["qdrant"]
    assert live.json() == {"status": "ok"}
