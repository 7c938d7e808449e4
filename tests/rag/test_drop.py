"""Dropping a collection deletes a real collection and nothing else under QDRANT_PATH."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from rag.store.edge import EdgeStore
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer

DOCS = {"documents": [{"id": "a.txt", "text": "Tides follow the moon."}]}


def test_a_directory_that_is_not_a_collection_is_never_deleted(
    make_settings: Callable[..., RagSettings], fast_embedding: ThreadServer, tmp_path: Path
) -> None:
    root = tmp_path / "qdrant"
    notes = root / "notes"
    notes.mkdir(parents=True)
    (notes / "keep.txt").write_text("precious")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "edge_config.json").write_text("{}")  # looks like a collection, but linked
    (root / "linked").symlink_to(elsewhere)
    settings = make_settings(embedding_url=fast_embedding.url, qdrant_path=root)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        for name in ("notes", "linked"):
            gone = client.delete(f"/v1/rag/collections/{name}")
            assert_openai_error(gone, 404, code="collection_not_found")
            taken = client.post(f"/v1/rag/collections/{name}/documents", json=DOCS)
            assert_openai_error(taken, 409, code="name_taken")
        assert client.get("/v1/rag/collections").json()["data"] == []
        assert client.post("/v1/rag/collections/kb/documents", json=DOCS).status_code == 200
        assert client.delete("/v1/rag/collections/kb").status_code == 200
    assert (notes / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in notes.iterdir()) == ["keep.txt"]
    assert (elsewhere / "edge_config.json").is_file() and (root / "linked").is_symlink()
    assert sorted(p.name for p in root.iterdir()) == ["linked", "notes"]


def test_an_interrupted_drop_is_finished_when_the_store_opens(
    make_settings: Callable[..., RagSettings], fast_embedding: ThreadServer, tmp_path: Path
) -> None:
    root = tmp_path / "qdrant"
    settings = make_settings(embedding_url=fast_embedding.url, qdrant_path=root)
    with TestClient(create_app(settings, CoreSettings(home=tmp_path))) as client:
        assert client.post("/v1/rag/collections/kb/documents", json=DOCS).status_code == 200
    # A drop killed after its rename, before the delete finished:
    (root / "kb").rename(root / ".dropped-kb-0123abcd")
    assert EdgeStore(root).list_collections() == []
    assert sorted(p.name for p in root.iterdir()) == []
