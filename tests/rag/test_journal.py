"""Writes finish or roll back: a kill at any store write of an index, an update or a delete
is repaired on the next start or the next call, leaving every document wholly at one version,
no chunk without its manifest and counts equal to the manifests'."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from anyio import CapacityLimiter
from fastapi.testclient import TestClient

from p2.core.errors import NotFound
from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.documents import CHUNKS, DOCS, Document, content_hash
from rag.embedder import Embedder
from rag.engine import Engine
from rag.indexing import Indexer
from rag.metrics import RagMetrics
from rag.retry import RetryPolicy
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import Record, VectorStore, Where
from rag.store.edge import EdgeStore
from tests.rag.fake_embedding import vector

WRITES = ("upsert", "delete", "delete_where", "ensure_collection", "drop_collection")


class Killed(BaseException):
    """The process died here: no ``except Exception`` handler runs, nothing is undone."""


class KilledAt:
    """A store whose ``at``-th write never happens: the writer dies instead."""

    def __init__(self, inner: VectorStore, at: int) -> None:
        self.inner = inner
        self.at = at
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        def write(*args: Any) -> Any:
            self.writes += 1
            if self.writes == self.at:
                raise Killed(name)
            return attr(*args)

        return write


def _embedder(metrics: RagMetrics) -> Embedder:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
        return httpx.Response(200, json={"data": data})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://e")
    policy = RetryPolicy("embedding", 0, 0.0, 0.0, metrics.retries)
    cpu = CapacityLimiter(2)
    return Embedder(client, model="m", batch=2, policy=policy, metrics=metrics, cpu=cpu)


def _indexer(store: VectorStore, settings: RagSettings) -> Indexer:
    metrics = RagMetrics()
    return Indexer(Engine(store, _embedder(metrics), Bm25Encoder(), settings, metrics))


def _docs(version: str) -> list[Document]:
    lines = " ".join(f"Version {version}, line {i}: the lamp burned all night." for i in range(12))
    return [Document(name, f"{name} {lines}", {"v": version}, name) for name in ("a", "b")]


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def _all(store: VectorStore, where: Where | None) -> list[Record]:
    found: list[Record] = []
    after = None
    while True:
        page, after = store.scroll("kb", where, 256, after)
        found += page
        if after is None:
            return found


def versions(store: VectorStore, settings: RagSettings) -> dict[str, str]:
    """Each document's version, after checking the collection is whole and consistent."""
    if not store.collection_exists("kb"):
        return {}
    records = _all(store, None)
    kinds = {str(r.payload["kind"]) for r in records}
    # no staged manifest, no journal record left; the record of the collection's model
    assert kinds <= {"doc", "chunk", "collection"}, kinds
    manifests = {str(r.payload["doc_id"]): r.payload for r in records if r.payload["kind"] == "doc"}
    chunks: dict[str, list[int]] = {}
    for r in records:
        if r.payload["kind"] == "chunk":
            manifest = manifests.get(str(r.payload["doc_id"]))
            assert manifest is not None, "a chunk without its document"
            assert manifest["content_hash"] == r.payload["content_hash"], "a dead chunk"
            chunks.setdefault(str(r.payload["doc_id"]), []).append(int(r.payload["chunk_index"]))
    for doc, manifest in manifests.items():
        assert sorted(chunks.get(doc, [])) == list(range(int(manifest["chunks"]))), doc
    assert store.count("kb", DOCS) == len(manifests)
    assert store.count("kb", CHUNKS) == sum(int(m["chunks"]) for m in manifests.values())
    digests = {
        content_hash(
            d, chunk_size=settings.chunk_size, overlap=settings.chunk_overlap, model="m"
        ): v
        for v in ("1", "2")
        for d in _docs(v)
    }
    return {doc: digests[str(m["content_hash"])] for doc, m in manifests.items()}


@pytest.fixture
def settings(make_settings: Callable[..., RagSettings]) -> RagSettings:
    return make_settings(chunk_size=120, chunk_overlap=20, embedding_model="m", embed_batch=2)


def _kill_each_write(
    root: Path,
    settings: RagSettings,
    prepare: Callable[[Indexer], Coroutine[Any, Any, Any]],
    operation: Callable[[Indexer], Coroutine[Any, Any, Any]],
    check: Callable[[VectorStore, int], None],
    repair: Callable[[Path, int], None],
) -> int:
    """Kill ``operation`` at its 1st, 2nd, ... store write, repair, check; the kill count."""
    at = 0
    while True:
        at += 1
        path = root / f"kill-{at}"
        store = EdgeStore(path)
        _run(prepare(_indexer(store, settings)))
        killed = KilledAt(store, at)
        with contextlib.suppress(Killed):
            _run(operation(_indexer(cast(VectorStore, killed), settings)))
        store.close()
        if killed.writes < at:  # the operation finished before the kill point
            return at - 1
        repair(path, at)
        store = EdgeStore(path)
        try:
            check(store, at)
        finally:
            store.close()


def _recover_at_start(settings: RagSettings) -> Callable[[Path, int], None]:
    def repair(path: Path, _: int) -> None:
        store = EdgeStore(path)
        app = create_app(settings, CoreSettings(home=path), store=store)
        with TestClient(app) as client:
            while not app.state.repair.done():
                time.sleep(0.01)
            assert client.get("/v1/rag/collections").status_code == 200

    return repair


def test_a_killed_update_is_finished_or_undone_at_the_next_start(
    settings: RagSettings, tmp_path: Path
) -> None:
    seen: set[str] = set()

    def check(store: VectorStore, at: int) -> None:
        found = versions(store, settings)
        assert set(found) == {"a", "b"}, at
        assert len(set(found.values())) == 1, (at, found)  # the request is one write
        seen.add(next(iter(found.values())))

    kills = _kill_each_write(
        tmp_path,
        settings,
        lambda indexer: indexer.index("kb", _docs("1")),
        lambda indexer: indexer.index("kb", _docs("2")),
        check,
        _recover_at_start(settings),
    )
    assert kills >= 8 and seen == {"1", "2"}  # killed before and after the commit


def test_a_killed_update_is_repaired_by_the_next_call(
    settings: RagSettings, tmp_path: Path
) -> None:
    def rerun(path: Path, _: int) -> None:
        store = EdgeStore(path)
        outcomes = _run(_indexer(store, settings).index("kb", _docs("2")))
        store.close()
        assert {o.id for o in outcomes} == {"a", "b"}

    def check(store: VectorStore, at: int) -> None:
        assert versions(store, settings) == {"a": "2", "b": "2"}, at

    _kill_each_write(
        tmp_path,
        settings,
        lambda indexer: indexer.index("kb", _docs("1")),
        lambda indexer: indexer.index("kb", _docs("2")),
        check,
        rerun,
    )


def test_a_killed_first_index_leaves_all_or_nothing(settings: RagSettings, tmp_path: Path) -> None:
    async def nothing(_: Indexer) -> None:
        return None

    def check(store: VectorStore, at: int) -> None:
        assert versions(store, settings) in ({}, {"a": "1", "b": "1"}), at

    kills = _kill_each_write(
        tmp_path,
        settings,
        nothing,
        lambda indexer: indexer.index("kb", _docs("1")),
        check,
        _recover_at_start(settings),
    )
    assert kills >= 6


def test_a_killed_delete_is_finished_by_the_next_start_or_call(
    settings: RagSettings, tmp_path: Path
) -> None:
    for repair_by_call in (False, True):

        def repair(path: Path, _: int, by_call: bool = repair_by_call) -> None:
            if not by_call:
                _recover_at_start(settings)(path, 0)
                return
            store = EdgeStore(path)
            with contextlib.suppress(NotFound):  # the user deletes again, gone or not
                _run(_indexer(store, settings).delete_document("kb", "a"))
            store.close()

        def check(store: VectorStore, at: int, by_call: bool = repair_by_call) -> None:
            # Killed before its record was written, a delete never happened; after, it is done.
            untouched = [] if by_call else [{"a": "1", "b": "1"}]
            assert versions(store, settings) in [{"b": "1"}, *untouched], at

        kills = _kill_each_write(
            tmp_path / str(repair_by_call),
            settings,
            lambda indexer: indexer.index("kb", _docs("1")),
            lambda indexer: indexer.delete_document("kb", "a"),
            check,
            repair,
        )
        assert kills == 4  # the record, the manifest, the chunks, the record's removal
