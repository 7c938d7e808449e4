"""Liveness stays up while a dependency is down; readiness names it (addresses for admins);
the embedded store survives a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from p2.core.keys import Keyring
from p2.core.process import free_port
from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from tests.rag.corpus import DOCS


def test_health_is_ok_when_everything_answers(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {"status": "ok"}


def test_a_dependency_down_makes_rag_unready_but_keeps_it_alive(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    """The supervisor restarts on /health alone: an outage elsewhere must not fail it."""
    dead = f"http://127.0.0.1:{free_port()}"
    port = dead.rsplit(":", 1)[1]
    keys = Keyring(["sk-user"], ["sk-admin"])
    for field, name in (("gateway_url", "gateway"), ("embedding_url", "embedding")):
        settings = make_settings(**{field: dead})
        with TestClient(create_app(settings, CoreSettings(home=tmp_path), keyring=keys)) as client:
            live = client.get("/health")
            ready = client.get("/health/ready")
            as_user = client.get("/health/ready", headers={"Authorization": "Bearer sk-user"})
            as_admin = client.get("/health/ready", headers={"Authorization": "Bearer sk-admin"})
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        assert ready.json() == {"status": "unavailable", "unavailable": [name]}
        assert as_user.json() == ready.json()  # addresses are for admins
        details = as_admin.json()["details"]
        assert list(details) == [name] and dead in details[name]
        assert port not in ready.text and port not in as_user.text


def test_without_keys_readiness_details_are_shown(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(embedding_url=dead)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        body = client.get("/health/ready").json()
    assert body["unavailable"] == ["embedding"] and dead in body["details"]["embedding"]


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
