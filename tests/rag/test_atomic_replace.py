"""A reader never sees two versions of a document being replaced, nor none of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from rag.store.base import StoredPoint, Where
from rag.store.edge import EdgeStore
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS


def _version(tag: str) -> str:
    sentences = [
        f"Lighthouse keeper log, edition {tag}, entry {i}: the lamp burned all night "
        f"and the fog horn sounded {i + 2} times before dawn."
        for i in range(6)
    ]
    return " ".join(sentences)


class SlowWrites(EdgeStore):
    """Edge with slow writes, so readers get many chances to look mid-replacement."""

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        super().upsert(name, points)
        time.sleep(0.1)

    def delete_where(self, name: str, where: Where) -> None:
        time.sleep(0.1)
        super().delete_where(name, where)


def test_queries_during_replacement_see_exactly_one_version(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    settings = make_settings(chunk_size=120, chunk_overlap=20)
    store = SlowWrites(tmp_path / "qdrant")
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path), store=store)).start()
    url = f"{server.url}/v1/rag/collections/kb/documents"
    docs = [{"id": k, "text": v} for k, v in DOCS.items()]
    try:
        assert httpx.post(url, json={"documents": docs}, timeout=60).status_code == 200
        seen: list[set[str]] = []
        stop = threading.Event()

        def write() -> None:
            for n in range(6):
                tag = "AAA" if n % 2 == 0 else "BBB"
                doc = {"id": "log.txt", "text": _version(tag), "metadata": {"version": tag}}
                body = {"documents": [doc]}
                assert httpx.post(url, json=body, timeout=60).status_code == 200
            stop.set()

        writer = threading.Thread(target=write)
        writer.start()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                body = {"collection": "kb", "query": "lighthouse keeper fog horn", "top_k": 20}
                results = client.post("/v1/rag/query", json=body).json()["results"]
                tags = {r["metadata"]["version"] for r in results if r["document_id"] == "log.txt"}
                if seen or tags:  # from the first write on, the document must be visible
                    seen.append(tags)
        writer.join()
    finally:
        server.stop()
    assert len(seen) >= 10
    assert all(len(tags) == 1 for tags in seen), seen
