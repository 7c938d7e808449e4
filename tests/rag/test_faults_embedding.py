"""Real network faults between RAG and the embedding service (a TCP proxy in between).

Indexing rides out refused, reset and stalled connections by retrying; an
outage longer than the retries fails the request cleanly, and re-running the
same indexing after the fault clears ends with every chunk stored exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from p2.core.settings import CoreSettings
from rag import chunking
from rag.app import create_app
from rag.settings import RagSettings
from rag.store.base import VectorStore
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS
from tests.rag.faultproxy import FaultProxy

SIZE, OVERLAP = 300, 50
EXPECTED = {name: len(chunking.split(text, SIZE, OVERLAP)) for name, text in DOCS.items()}


@pytest.fixture
def proxy(embedding_server: ThreadServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(embedding_server.port)
    yield proxy
    proxy.close()


def _app(make: Callable[..., RagSettings], proxy: FaultProxy, home: Path, **kw: Any) -> Any:
    settings = make(
        embedding_url=proxy.url,
        embed_batch=2,
        embed_timeout=2.5,
        chunk_size=SIZE,
        chunk_overlap=OVERLAP,
        **kw,
    )
    return create_app(settings, CoreSettings(home=home))


def assert_exactly_once(store: VectorStore, collection: str) -> None:
    """Every expected chunk stored once: no duplicate, no missing, no stale version."""
    seen: list[tuple[str, int]] = []
    offset = None
    while True:
        records, offset = store.scroll(collection, None, 256, offset)
        seen += [
            (r.payload["doc_id"], r.payload["chunk_index"])
            for r in records
            if r.payload["kind"] == "chunk"
        ]
        if offset is None:
            break
    assert len(seen) == len(set(seen)), "duplicate chunks"
    expected = {(doc, i) for doc, n in EXPECTED.items() for i in range(n)}
    assert set(seen) == expected


def _post_all(client: TestClient) -> list[int]:
    statuses = []
    for name, text in DOCS.items():
        body = {"documents": [{"id": name, "text": text}]}
        statuses.append(client.post("/v1/rag/collections/kb/documents", json=body).status_code)
    return statuses


def test_indexing_rides_out_refused_reset_and_stalled_connections(
    make_settings: Callable[..., RagSettings], proxy: FaultProxy, tmp_path: Path
) -> None:
    app = _app(make_settings, proxy, tmp_path, embed_max_retries=6)
    with TestClient(app) as client:
        proxy.plan = ["reset", "stall", "reset"]
        proxy.set_mode("refuse")
        threading.Timer(0.4, proxy.set_mode, args=("pass",)).start()
        assert _post_all(client) == [200] * len(DOCS)
        metrics = client.get("/metrics").text
        store = app.state.store
        assert_exactly_once(store, "kb")
    assert proxy.seen["reset"] >= 2 and proxy.seen["stall"] == 1
    retries = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('p2_rag_retries_total{operation="embed_documents",target="embedding"}')
    ]
    assert retries and retries[0] >= 3


def test_outage_fails_cleanly_and_a_rerun_completes_exactly_once(
    make_settings: Callable[..., RagSettings], proxy: FaultProxy, tmp_path: Path
) -> None:
    app = _app(make_settings, proxy, tmp_path, embed_max_retries=1)
    with TestClient(app) as client:
        first = list(DOCS.items())[:2]
        for name, text in first:
            ok = client.post(
                "/v1/rag/collections/kb/documents",
                json={"documents": [{"id": name, "text": text}]},
            )
            assert ok.status_code == 200
        proxy.set_mode("reset")
        statuses = _post_all(client)
        assert statuses[2:] == [503] * (len(DOCS) - 2)
        failed = client.post(
            "/v1/rag/collections/kb/documents",
            json={"documents": [{"id": "x", "text": "some text"}]},
        )
        assert_openai_error(failed, 503, code="embedding_unavailable")

        proxy.set_mode("pass")
        rerun = [
            client.post(
                "/v1/rag/collections/kb/documents",
                json={"documents": [{"id": name, "text": text}]},
            ).json()["documents"][0]["status"]
            for name, text in DOCS.items()
        ]
        assert rerun[:2] == ["unchanged", "unchanged"]
        assert rerun[2:] == ["indexed"] * (len(DOCS) - 2)
        assert_exactly_once(app.state.store, "kb")
