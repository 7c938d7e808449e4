"""Health names the dependency that is down; the embedded store survives a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from p2.core.process import free_port
from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from tests.rag.corpus import DOCS


def test_health_is_ok_when_everything_answers(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_health_names_the_missing_dependency(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for field, name in (("gateway_url", "gateway"), ("embedding_url", "embedding service")):
        settings = make_settings(**{field: dead})
        with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
            response = client.get("/health")
        message = assert_openai_error(response, 503, code="dependency_unavailable")["message"]
        assert name in message and dead in message
        other = "embedding service" if name == "gateway" else "gateway"
        assert other not in message


def test_data_survives_a_restart(make_settings: Callable[..., RagSettings], tmp_path: Path) -> None:
    settings = make_settings()
    docs = {"documents": [{"id": k, "text": v} for k, v in DOCS.items()]}
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        assert client.post("/v1/rag/collections/kb/documents", json=docs).status_code == 200
        before = client.get("/v1/rag/collections").json()
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        assert client.get("/v1/rag/collections").json() == before
        again = client.post("/v1/rag/collections/kb/documents", json=docs).json()
        assert again["unchanged"] == len(DOCS)
        results = client.post(
            "/v1/rag/query", json={"collection": "kb", "query": "espresso pressure"}
        ).json()["results"]
        assert results[0]["document_id"] == "espresso.md"


def test_default_store_lives_under_p2_home(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    settings = make_settings(qdrant_path=None)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path / "home"))) as client:
        docs = {"documents": [{"id": "a", "text": "Tides follow the moon."}]}
        assert client.post("/v1/rag/collections/kb/documents", json=docs).status_code == 200
    assert (tmp_path / "home" / "qdrant" / "kb" / "edge_config.json").is_file()
