"""Bounded ingest: bodies and uploads are refused at the byte that breaks a limit, hostile
files cost at most their limits, and nothing a refused request carried is stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.fake_embedding import fake_embedding_app
from tests.rag.pdfmaker import make_pages, make_pdf

PIECE = 64 * 1024
DOCS_URL = "/v1/rag/collections/kb/documents"


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }


def post_streaming(
    app: FastAPI, path: str, pieces: Iterator[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, int]:
    """POST a body piece by piece straight into the ASGI app: (status, body, pieces read)."""
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": piece, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(_scope(path, headers), receive, send))  # type: ignore[arg-type]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, read


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode()

    def json(self) -> Any:
        import json

        return json.loads(self.text)


@pytest.fixture
def make_app(
    make_settings: Callable[..., RagSettings], fast_embedding: ThreadServer, tmp_path: Path
) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        settings = make_settings(embedding_url=fast_embedding.url, **overrides)
        return create_app(settings, CoreSettings(home=tmp_path))

    return make


def test_a_json_body_is_refused_as_soon_as_it_passes_the_limit(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(max_body_bytes=1024 * 1024)
    json_type = [(b"content-type", b"application/json")]
    huge = (b"x" * PIECE for _ in range(1024))  # 64 MiB on offer
    status, body, read = post_streaming(app, DOCS_URL, huge, json_type)
    assert_openai_error(_Answer(status, body), 413, contains="RAG_MAX_BODY_BYTES")
    assert read <= 17  # 1 MiB and one piece, not the 64 MiB

    declared = [*json_type, (b"content-length", str(64 * 1024 * 1024).encode())]
    status, body, read = post_streaming(
        app, DOCS_URL, (b"x" * PIECE for _ in range(1024)), declared
    )
    assert status == 413 and read == 0  # refused on the declared length alone
    for path in ("/v1/rag/query", "/v1/rag/chat"):  # every body, not only uploads
        status, _, read = post_streaming(app, path, (b"x" * PIECE for _ in range(1024)), json_type)
        assert status == 413 and read <= 17


def _multipart(parts: Iterator[tuple[str, Iterator[bytes]]]) -> Iterator[bytes]:
    boundary = b"p2boundary"
    for name, pieces in parts:
        yield (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; '
            b'filename="' + name.encode() + b'"\r\nContent-Type: text/plain\r\n\r\n'
        )
        yield from pieces
        yield b"\r\n"
    yield b"--" + boundary + b"--\r\n"


MULTIPART = [(b"content-type", b"multipart/form-data; boundary=p2boundary")]


def test_an_upload_is_refused_at_the_file_that_breaks_a_limit(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(max_files=5, max_document_bytes=100 * 1024, max_body_bytes=512 * 1024 * 1024)
    many = ((f"f{i}.txt", iter([b"some text"])) for i in range(10_000))
    status, body, read = post_streaming(app, DOCS_URL, _multipart(many), MULTIPART)
    assert_openai_error(_Answer(status, body), 413, code="too_many_files", contains="5")
    assert read <= 6 * 3 + 1  # three pieces per file: refused at the sixth file

    big = iter([("big.txt", (b"y" * PIECE for _ in range(1000)))])
    status, body, read = post_streaming(app, DOCS_URL, _multipart(big), MULTIPART)
    error = assert_openai_error(_Answer(status, body), 413, code="file_too_large")
    assert "'big.txt'" in error["message"] and read <= 4


def test_metadata_is_bounded_and_stored_once_per_document(
    make_app: Callable[..., FastAPI],
) -> None:
    text = " ".join(f"Sentence {i} about tides and the moon." for i in range(6000))  # ~230 kB
    metadata = {"blob": "m" * 100_000}
    doc = {"id": "big.txt", "text": text, "metadata": metadata}
    with TestClient(make_app(max_metadata_bytes=16 * 1024)) as client:
        refused = client.post(DOCS_URL, json={"documents": [doc]})
        error = assert_openai_error(refused, 413, code="metadata_too_large")
        assert "'big.txt'" in error["message"] and "RAG_MAX_METADATA_BYTES" in error["message"]
        assert client.get("/v1/rag/collections").json()["data"] == []
    app = make_app(max_metadata_bytes=200_000)
    with TestClient(app) as client:
        answer = client.post(DOCS_URL, json={"documents": [doc]}).json()
        assert answer["documents"][0]["chunks"] > 500
        found = client.post("/v1/rag/query", json={"collection": "kb", "query": "tides"}).json()
        assert found["results"][0]["metadata"] == metadata  # from the manifest
        stored = 0
        after = None
        while True:
            records, after = app.state.store.scroll("kb", None, 256, after)
            stored += sum(len(str(r.payload)) for r in records)
            if after is None:
                break
    assert stored < 2 * (len(text) + 100_000)  # copied into every chunk it would be ~60 MB


def test_a_pdf_with_too_many_pages_is_refused_by_name(make_app: Callable[..., FastAPI]) -> None:
    pdf = make_pages([["Page one."], ["Page two."], ["Page three."]])
    files = [("files", ("ok.txt", b"Fine text.", "text/plain")), ("files", ("long.pdf", pdf, "x"))]
    with TestClient(make_app(max_pdf_pages=2)) as client:
        refused = client.post(DOCS_URL, files=files)
        error = assert_openai_error(refused, 413, code="too_many_pages")
        assert "'long.pdf'" in error["message"] and "RAG_MAX_PDF_PAGES" in error["message"]
        assert client.get("/v1/rag/collections").json()["data"] == []  # ok.txt neither


def test_a_slow_extraction_is_killed_at_its_time_limit(make_app: Callable[..., FastAPI]) -> None:
    line = "Glaciers carve valleys and leave moraines where they melt away slowly. " * 2
    slow = make_pages([[line] * 50 for _ in range(300)])  # ~1.6 s of pypdf here
    with TestClient(make_app(extract_timeout=0.3)) as client:
        client.post(DOCS_URL, files=[("files", ("warm.pdf", make_pdf(["Warm up."]), "x"))])
        started = time.monotonic()
        refused = client.post(DOCS_URL, files=[("files", ("slow.pdf", slow, "x"))])
        took = time.monotonic() - started
        error = assert_openai_error(refused, 422, code="extraction_timeout")
        assert "'slow.pdf'" in error["message"] and "RAG_EXTRACT_TIMEOUT" in error["message"]
        assert took < 1.3
        after = client.post(DOCS_URL, files=[("files", ("ice.pdf", make_pdf(["Ice."]), "x"))])
        assert after.status_code == 200, after.text  # a fresh worker took over


def test_a_refused_later_file_changes_nothing(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as client:
        first = client.post(DOCS_URL, files=[("files", ("a.txt", b"Alpha text.", "text/plain"))])
        assert first.status_code == 200
        before = client.get("/v1/rag/collections/kb/documents").json()["data"]
        files = [
            ("files", ("a.txt", b"Alpha text, changed.", "text/plain")),
            ("files", ("b.txt", b"Beta text.", "text/plain")),
            ("files", ("c.pdf", b"%PDF-1.4 broken", "application/pdf")),
        ]
        assert_openai_error(client.post(DOCS_URL, files=files), 400, code="unreadable_file")
        assert client.get("/v1/rag/collections/kb/documents").json()["data"] == before


def test_a_write_the_embedding_service_refuses_half_way_is_undone(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    refusing = ThreadServer(fake_embedding_app(refuse_word="POISON")).start()
    try:
        settings = make_settings(embedding_url=refusing.url, embed_batch=2, embed_max_retries=0)
        app = create_app(settings, CoreSettings(home=tmp_path))
        many = " ".join(f"Line {i} of a long first document about rivers." for i in range(300))
        docs = [
            {"id": "first.txt", "text": many},
            {"id": "second.txt", "text": "A second document, then POISON at its end."},
        ]
        with TestClient(app) as client:
            refused = client.post(DOCS_URL, json={"documents": docs})
            assert_openai_error(refused, 502, code="embedding_error")
            assert refusing.app.state.calls > 1  # the first document's chunks were written
            assert client.get("/v1/rag/collections").json()["data"] == []
            ok = client.post(DOCS_URL, json={"documents": docs[:1]})
            assert ok.status_code == 200
            refused = client.post(DOCS_URL, json={"documents": [docs[1]]})
            assert_openai_error(refused, 502, code="embedding_error")
            stored = client.get("/v1/rag/collections/kb").json()
        assert stored == {
            "name": "kb",
            "documents": 1,
            "chunks": ok.json()["documents"][0]["chunks"],
            "embedding_model": settings.embedding_model,
        }
    finally:
        refusing.stop()
