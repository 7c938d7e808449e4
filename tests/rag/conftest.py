"""RAG fixtures: a real embedding endpoint (MiniLM), a mock gateway, app factories."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.metrics import RagMetrics
from rag.settings import RagSettings
from rag.store.base import VectorStore
from rag.store.factory import qdrant_policy
from rag.store.retrying import RetryingStore
from rag.store.server import ServerStore
from testkit.threadserver import ThreadServer
from tests.rag.fake_embedding import fake_embedding_app
from tests.rag.mock_gateway import mock_gateway_app
from tests.rag.servers import embedding_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST_RETRIES: dict[str, Any] = {
    "qdrant_retry_min_wait": 0.01,
    "qdrant_retry_max_wait": 0.05,
    "embed_retry_min_wait": 0.05,
    "embed_retry_max_wait": 0.2,
}


@pytest.fixture(scope="session")
def embedding_server() -> Iterator[ThreadServer]:
    server = ThreadServer(embedding_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fast_embedding() -> Iterator[ThreadServer]:
    """Hashed bag-of-words vectors: for tests of RAG's own work, not of retrieval quality."""
    server = ThreadServer(fake_embedding_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway_server() -> Iterator[ThreadServer]:
    server = ThreadServer(mock_gateway_app()).start()
    yield server
    server.stop()


@pytest.fixture
def make_settings(
    tmp_path: Path, embedding_server: ThreadServer, gateway_server: ThreadServer
) -> Callable[..., RagSettings]:
    def make(**overrides: Any) -> RagSettings:
        values: dict[str, Any] = {
            "embedding_url": embedding_server.url,
            "gateway_url": gateway_server.url,
            "qdrant_path": tmp_path / "qdrant",
            "chunk_size": 300,
            "chunk_overlap": 50,
            **FAST_RETRIES,
            **overrides,
        }
        return RagSettings.build(**values)

    return make


def local_server_store(settings: RagSettings) -> VectorStore:
    """The Qdrant-server adapter on qdrant-client's in-process engine, with retries."""
    inner = ServerStore(QdrantClient(location=":memory:"))
    return RetryingStore(inner, qdrant_policy(settings, RagMetrics()))


@pytest.fixture(params=["edge", "server"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(
    backend: str, make_settings: Callable[..., RagSettings], tmp_path: Path
) -> Iterator[TestClient]:
    settings = make_settings()
    store = local_server_store(settings) if backend == "server" else None
    app = create_app(settings, CoreSettings(home=tmp_path), store=store)
    with TestClient(app) as test_client:
        yield test_client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # qdrant-client's local mode (the server adapter's test engine) warns that it
    # ignores payload indexes and search params; a real server honours them.
    for item in items:
        if "tests/rag/" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings("ignore::UserWarning:rag.store.server"))
