"""Keys on RAG's port: users query and read, admins write; RAG calls out with the service key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.fake_embedding import fake_embedding_app
from tests.rag.mock_gateway import mock_gateway_app

USER, ADMIN = "sk-user-1", "sk-admin-1"
DOCS = {"documents": [{"id": "tides.txt", "text": "Spring tides follow the new and full moon."}]}
ASK = {"collection": "kb", "messages": [{"role": "user", "content": "When are spring tides?"}]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(
    make_settings: Callable[..., RagSettings], fast_embedding: ThreadServer, tmp_path: Path
) -> Iterator[TestClient]:
    settings = make_settings(embedding_url=fast_embedding.url)
    app = create_app(settings, CoreSettings(home=tmp_path), keyring=Keyring([USER], [ADMIN]))
    with TestClient(app) as client:
        yield client


def test_writes_need_an_admin_key_and_reads_a_user_key(keyed: TestClient) -> None:
    user, admin = _auth(USER), _auth(ADMIN)
    writes = [
        ("POST", "/v1/rag/collections/kb/documents", DOCS),
        ("POST", "/index?collection=kb", DOCS),
    ]
    for method, path, body in writes:
        assert_openai_error(keyed.request(method, path, json=body), 401, code="invalid_api_key")
        refused = keyed.request(method, path, json=body, headers=user)
        assert_openai_error(refused, 403, code="insufficient_scope")
    assert keyed.get("/v1/rag/collections", headers=admin).json()["data"] == []  # none written
    assert keyed.post(writes[0][1], json=DOCS, headers=admin).status_code == 200

    reads = [
        ("GET", "/v1/rag/collections", None),
        ("GET", "/v1/rag/collections/kb", None),
        ("GET", "/v1/rag/collections/kb/documents", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/rag/query", {"collection": "kb", "query": "moon"}),
        ("POST", "/v1/rag/chat", ASK),
        ("POST", "/v1/chat/completions", {**ASK, "model": "rag/kb"}),
    ]
    for method, path, body in reads:
        assert_openai_error(keyed.request(method, path, json=body), 401)
        wrong = keyed.request(method, path, json=body, headers=_auth("sk-nope"))
        assert_openai_error(wrong, 401, contains="Incorrect API key")
        answer = keyed.request(method, path, json=body, headers=user)
        assert answer.status_code == 200, (path, answer.text)
        assert keyed.request(method, path, json=body, headers=admin).status_code == 200

    for path in ("/v1/rag/collections/kb/documents/tides.txt", "/v1/rag/collections/kb"):
        assert_openai_error(keyed.delete(path), 401)
        assert_openai_error(keyed.delete(path, headers=user), 403)
        assert keyed.get("/v1/rag/collections/kb", headers=user).json()["documents"] == 1
    assert keyed.delete("/v1/rag/collections/kb/documents/tides.txt", headers=admin).is_success
    assert keyed.delete("/v1/rag/collections/kb", headers=admin).is_success


def test_probes_stay_open(keyed: TestClient) -> None:
    assert keyed.get("/health").json() == {"status": "ok"}
    assert keyed.get("/health/ready").status_code == 200
    assert "p2_rag_requests_total" in keyed.get("/metrics").text


def test_keys_from_a_file_work_and_rag_calls_out_with_the_service_key(
    make_settings: Callable[..., RagSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No client key of RAG's own: users from P2_API_KEYS_FILE only, P2_SERVICE_KEY outwards."""
    service = "sk-p2-service-test"
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nsk-file-user\n")
    for name in ("P2_API_KEYS", "RAG_GATEWAY_API_KEY", "P2_ADMIN_KEYS_FILE", "P2_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("P2_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("P2_ADMIN_KEYS", ADMIN)
    monkeypatch.setenv("P2_SERVICE_KEY", service)
    gateway = ThreadServer(mock_gateway_app(api_key=service)).start()
    embedding = ThreadServer(fake_embedding_app(api_key=service)).start()
    try:
        settings = make_settings(gateway_url=gateway.url, embedding_url=embedding.url)
        assert settings.gateway_key == service
        with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
            indexed = client.post("/index?collection=kb", json=DOCS, headers=_auth(ADMIN))
            assert indexed.status_code == 200, indexed.text
            answer = client.post("/v1/rag/chat", json=ASK, headers=_auth("sk-file-user"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["sources"][0]["document_id"] == "tides.txt"
            assert client.get("/v1/models", headers=_auth(service)).status_code == 200
            assert_openai_error(client.post("/index?collection=kb", headers=_auth(service)), 403)
    finally:
        gateway.stop()
        embedding.stop()
