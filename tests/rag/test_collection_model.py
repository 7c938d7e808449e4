"""A collection records the embedding model it was built with: later writes and queries
use that one, another is refused, and ``p2 index --reindex --embedding-model`` rebuilds
the collection with another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from p2.core.settings import CoreSettings
from rag import indexer_cli
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.conftest import FAST_RETRIES
from tests.rag.fake_embedding import vector

TUNED = "ft:embedding:pkgs:job-1"


def recording_embedding() -> FastAPI:
    """The fake embedding endpoint, remembering the model each call asked for."""
    app = FastAPI()
    app.state.models = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await request.json()
        app.state.models.append(body["model"])
        data = [
            {"object": "embedding", "index": i, "embedding": vector(t)}
            for i, t in enumerate(body["input"])
        ]
        return {"object": "list", "data": data, "model": body["model"]}

    return app


@pytest.fixture
def embedder() -> Iterator[FastAPI]:
    app = recording_embedding()
    with ThreadServer(app) as server:
        app.state.url = server.url
        yield app


@pytest.fixture
def rag(embedder: FastAPI, tmp_path: Path) -> Iterator[str]:
    settings = RagSettings.build(
        embedding_url=embedder.state.url, qdrant_path=tmp_path / "qdrant", **FAST_RETRIES
    )
    with ThreadServer(create_app(settings, CoreSettings(home=tmp_path))) as server:
        yield server.url


def _index(url: str, doc: str, **params: str) -> httpx.Response:
    files = [("files", (f"{doc}.txt", f"{doc} is about glaciers and valleys".encode()))]
    return httpx.post(f"{url}/v1/rag/collections/kb/documents", files=files, params=params)


def test_writes_and_queries_use_the_model_the_collection_was_built_with(
    rag: str, embedder: FastAPI
) -> None:
    assert _index(rag, "one", embedding_model=TUNED).status_code == 200
    assert httpx.get(f"{rag}/v1/rag/collections/kb").json()["embedding_model"] == TUNED
    embedder.state.models.clear()
    assert _index(rag, "two").status_code == 200  # no model named: the recorded one
    query = {"collection": "kb", "query": "glaciers"}
    assert httpx.post(f"{rag}/v1/rag/query", json=query).json()["results"]
    assert embedder.state.models == [TUNED, TUNED]
    refused = _index(rag, "three", embedding_model="all-MiniLM-L6-v2")
    assert_openai_error(refused, 409, code="embedding_model_mismatch", contains="--reindex")
    documents = httpx.get(f"{rag}/v1/rag/collections/kb").json()["documents"]
    assert documents == 2  # the record is no document


def test_a_collection_without_a_record_uses_the_configured_model(
    rag: str, embedder: FastAPI
) -> None:
    assert _index(rag, "one").status_code == 200
    described = httpx.get(f"{rag}/v1/rag/collections/kb").json()
    assert described["embedding_model"] == "all-MiniLM-L6-v2"
    assert embedder.state.models == ["all-MiniLM-L6-v2"]


def test_reindex_rebuilds_the_collection_with_another_model(
    rag: str, embedder: FastAPI, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.md").write_text(f"# {name}\n\nNotes about {name} and rivers.")
    state = tmp_path / "state"
    first = indexer_cli.index(folder, "kb", rag, state_dir=state, progress=False)
    assert first.indexed == 3
    with pytest.raises(indexer_cli.IndexingFailed, match="--reindex"):
        indexer_cli.index(folder, "kb", rag, state_dir=state, progress=False, embedding_model=TUNED)
    embedder.state.models.clear()
    rebuilt = indexer_cli.index(
        folder, "kb", rag, state_dir=state, progress=False, reindex=True, embedding_model=TUNED
    )
    assert (rebuilt.indexed, rebuilt.skipped) == (3, 0)  # all of it, none skipped
    described = httpx.get(f"{rag}/v1/rag/collections/kb").json()
    assert (described["embedding_model"], described["documents"]) == (TUNED, 3)
    assert set(embedder.state.models) == {TUNED}
