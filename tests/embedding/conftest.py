"""Embedding fixtures: the real all-MiniLM-L6-v2, loaded once per session per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from embedding.app import create_app
from embedding.runtime import Runtime, load_runtime
from embedding.samples import stdlib_passages
from embedding.settings import Backend, EmbeddingSettings
from p2.core.settings import CoreSettings

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture(scope="session")
def embedding_cache(p2_home: Path) -> Path:
    """Where exported models go; ``python -m embedding`` with ``P2_HOME`` finds them here."""
    return CoreSettings(home=p2_home).models_dir / "embedding"


def _load(backend: Backend, cache: Path) -> Runtime:
    return load_runtime(EmbeddingSettings(backend=backend), cache)


@pytest.fixture(scope="session")
def int8_runtime(embedding_cache: Path) -> Runtime:
    return _load(Backend.ONNX_INT8, embedding_cache)


@pytest.fixture(scope="session")
def fp32_runtime(embedding_cache: Path, int8_runtime: Runtime) -> Runtime:
    return _load(Backend.ONNX, embedding_cache)  # after int8: reuses its export


@pytest.fixture(scope="session")
def torch_runtime(embedding_cache: Path) -> Runtime:
    return _load(Backend.TORCH, embedding_cache)


@pytest.fixture(scope="session")
def passages() -> tuple[str, ...]:
    """Real passages the int8 check at load time did not see."""
    return stdlib_passages()[200:264]


@pytest.fixture
def client_for(p2_home: Path) -> ClientFactory:
    """``with client_for(runtime, max_inputs=4) as client``: an app on a loaded model."""

    @contextmanager
    def make(runtime: Runtime, **settings: object) -> Iterator[TestClient]:
        app = create_app(
            EmbeddingSettings(**settings),  # type: ignore[arg-type]
            CoreSettings(home=p2_home),
            runtime=runtime,
        )
        with TestClient(app) as client:
            yield client

    return make


@pytest.fixture
def client(client_for: ClientFactory, int8_runtime: Runtime) -> Iterator[TestClient]:
    with client_for(int8_runtime) as test_client:
        yield test_client
