"""The RAG API as a user sees it, on both store backends (Edge, and the server adapter)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from testkit.openai_errors import assert_openai_error
from tests.rag.corpus import DOCS


def _docs(**replace: str) -> dict[str, Any]:
    texts = {**DOCS, **replace}
    return {
        "documents": [
            {"id": name, "text": text, "metadata": {"topic": name.split(".")[0]}}
            for name, text in texts.items()
        ]
    }


def _index(client: TestClient, collection: str = "kb", **replace: str) -> dict[str, Any]:
    response = client.post(f"/v1/rag/collections/{collection}/documents", json=_docs(**replace))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _collection(client: TestClient, name: str) -> dict[str, Any]:
    listing = client.get("/v1/rag/collections").json()["data"]
    found = [c for c in listing if c["name"] == name]
    assert len(found) == 1, listing
    return dict(found[0])


def _query(client: TestClient, query: str, **extra: Any) -> list[dict[str, Any]]:
    body = {"collection": "kb", "query": query, **extra}
    response = client.post("/v1/rag/query", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_indexed_documents_are_counted_and_retrieved_best_first(client: TestClient) -> None:
    answer = _index(client)
    assert answer["indexed"] == len(DOCS) and answer["unchanged"] == 0
    chunks = sum(d["chunks"] for d in answer["documents"])
    assert chunks > len(DOCS)  # 300-character chunks: every document splits
    assert _collection(client, "kb") == {
        "name": "kb",
        "documents": len(DOCS),
        "chunks": chunks,
        "embedding_model": "all-MiniLM-L6-v2",  # the one it was built with
    }

    for mode in ("hybrid", "dense"):
        results = _query(client, "Why does volcanic ash ground aircraft?", mode=mode, top_k=3)
        assert len(results) == 3
        assert results[0]["document_id"] == "volcanoes.md"
        assert "jet engines" in " ".join(
            r["text"] for r in results if r["document_id"] == "volcanoes.md"
        )
        assert results[0]["metadata"]["topic"] == "volcanoes"
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        assert set(results[0]) >= {"document_id", "chunk_index", "score", "text", "metadata"}


def test_default_top_k_is_four(client: TestClient) -> None:
    _index(client)
    assert len(_query(client, "coffee grind")) == 4


def test_reindexing_unchanged_documents_writes_nothing(client: TestClient) -> None:
    first = _index(client)
    before = _collection(client, "kb")
    written = _metric(client, "p2_rag_chunks_written_total")
    assert written == sum(d["chunks"] for d in first["documents"])
    again = _index(client)
    assert again["indexed"] == 0 and again["unchanged"] == len(DOCS)
    assert [d["chunks"] for d in again["documents"]] == [d["chunks"] for d in first["documents"]]
    assert _metric(client, "p2_rag_chunks_written_total") == written
    assert _metric(client, 'p2_rag_documents_total{outcome="unchanged"}') == len(DOCS)
    assert _collection(client, "kb") == before


def test_changed_document_replaces_its_chunks(client: TestClient) -> None:
    _index(client)
    new_text = (
        "Sourdough bread rises with a starter of wild yeast and lactobacilli "
        "instead of baker's yeast."
    )
    answer = _index(client, **{"bread.txt": new_text})
    statuses = {d["id"]: d["status"] for d in answer["documents"]}
    assert statuses["bread.txt"] == "indexed"
    assert [s for i, s in statuses.items() if i != "bread.txt"] == ["unchanged"] * (len(DOCS) - 1)
    bread = next(d for d in answer["documents"] if d["id"] == "bread.txt")
    assert bread["chunks"] == 1

    results = _query(client, "How is bread made to rise?", top_k=10)
    bread_texts = [r["text"] for r in results if r["document_id"] == "bread.txt"]
    assert bread_texts == [new_text]  # the old chunks are gone, the new one is there once
    total = sum(d["chunks"] for d in answer["documents"])
    assert _collection(client, "kb")["chunks"] == total


def test_delete_document_and_collection(client: TestClient) -> None:
    _index(client)
    assert client.delete("/v1/rag/collections/kb/documents/tides.txt").status_code == 200
    assert _metric(client, 'p2_rag_documents_total{outcome="deleted"}') == 1
    gone = client.delete("/v1/rag/collections/kb/documents/tides.txt")
    assert_openai_error(gone, 404, code="document_not_found")
    assert _collection(client, "kb")["documents"] == len(DOCS) - 1
    results = _query(client, "Why are there spring tides?", top_k=10)
    assert all(r["document_id"] != "tides.txt" for r in results)

    assert client.delete("/v1/rag/collections/kb").status_code == 200
    assert client.get("/v1/rag/collections").json()["data"] == []
    assert_openai_error(
        client.post("/v1/rag/query", json={"collection": "kb", "query": "x"}),
        404,
        code="collection_not_found",
        param="collection",
        contains="'kb'",
    )
    assert_openai_error(client.delete("/v1/rag/collections/kb"), 404, code="collection_not_found")


def test_bad_input_is_a_4xx_and_loses_nothing(client: TestClient) -> None:
    _index(client)
    before = _collection(client, "kb")
    docs_url = "/v1/rag/collections/kb/documents"
    bad_name = client.post("/v1/rag/collections/bad name!/documents", json=_docs())
    assert_openai_error(bad_name, 400, code="invalid_collection_name")
    assert_openai_error(client.post("/index?collection=../etc", json=_docs()), 400)
    assert_openai_error(client.post(docs_url, content=b"{not json"), 400)
    assert_openai_error(client.post(docs_url, json={"documents": []}), 400)
    empty = {"documents": [{"id": "e", "text": "   "}]}
    assert_openai_error(client.post(docs_url, json=empty), 400, code="empty_document")
    twice = {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}
    assert_openai_error(client.post(docs_url, json=twice), 400, code="duplicate_document_id")
    for bad_query in ({"query": ""}, {"query": "x", "top_k": 0}, {"query": "x", "mode": "y"}):
        response = client.post("/v1/rag/query", json={"collection": "kb", **bad_query})
        assert_openai_error(response, 400)
    nope = client.post("/v1/rag/query", json={"collection": "nope", "query": "x"})
    assert_openai_error(nope, 404, code="collection_not_found")
    no_collection = {"messages": [{"role": "user", "content": "hi"}]}
    assert_openai_error(
        client.post("/v1/rag/chat", json=no_collection), 400, code="missing_collection"
    )
    assert _collection(client, "kb") == before


def test_guide_index_endpoint(client: TestClient) -> None:
    response = client.post("/index?collection=guide", json=_docs())
    assert response.status_code == 200, response.text
    assert _collection(client, "guide")["documents"] == len(DOCS)


def test_hybrid_finds_an_exact_code_word(client: TestClient) -> None:
    _index(client)
    code_doc = {
        "id": "errata.txt",
        "text": "Firmware error ZX-4471 means the pump sensor is unplugged.",
    }
    client.post("/v1/rag/collections/kb/documents", json={"documents": [code_doc]})
    results = _query(client, "ZX-4471", mode="hybrid", top_k=2)
    assert results[0]["document_id"] == "errata.txt"


def test_metrics_are_exposed(client: TestClient) -> None:
    _index(client)
    _query(client, "tides")
    _query(client, "tides", mode="dense")
    client.get("/health")
    assert _metric(client, 'p2_rag_requests_total{route="/v1/rag/query",status="200"}') == 2
    documents = 'p2_rag_requests_total{route="/v1/rag/collections/{name}/documents",status="200"}'
    assert _metric(client, documents) == 1
    assert _metric(client, 'p2_rag_documents_total{outcome="indexed"}') == len(DOCS)
    assert _metric(client, 'p2_rag_query_seconds_count{mode="hybrid"}') == 1
    assert _metric(client, 'p2_rag_query_seconds_count{mode="dense"}') == 1
    assert _metric(client, "p2_rag_embed_seconds_count") >= 3  # documents, then two queries
    assert "/health" not in client.get("/metrics").text


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_documents_are_listed_page_by_page(client: TestClient) -> None:
    _index(client)
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        page = client.get("/v1/rag/collections/kb/documents", params=params).json()
        seen += [d["id"] for d in page["data"]]
        assert all(d["chunks"] >= 1 and len(d["content_hash"]) == 64 for d in page["data"])
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(DOCS)
    bad = client.get("/v1/rag/collections/kb/documents", params={"after": "nope"})
    assert_openai_error(bad, 400, contains="cursor")
    missing = client.get("/v1/rag/collections/none/documents")
    assert_openai_error(missing, 404, code="collection_not_found")
