"""Indexing: chunk, embed, upsert; idempotent and safe to retry or resume.

Per changed document: write its new chunks (ids derived from the content hash,
invisible to readers until the manifest names that hash), switch the manifest,
then delete the chunks of older versions. An unchanged document costs one
manifest read and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from p2.core.errors import BadRequest, NotFound
from rag import chunking
from rag.documents import (
    CHUNKS,
    DOCS,
    Document,
    all_chunks,
    chunk_point,
    content_hash,
    manifest_point,
    manifests_by_doc,
    stale_chunks,
)
from rag.embedder import Embedder
from rag.metrics import RagMetrics
from rag.names import check_collection, check_document_id, doc_point_id
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import StoredPoint, VectorStore
from rag.threads import off_loop

log = logging.getLogger("p2.rag.indexing")
_UPSERT_BATCH = 256


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str  # "indexed" or "unchanged"
    chunks: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "chunks": self.chunks}


@dataclass
class _Pending:
    doc: Document
    digest: str
    chunks: list[chunking.Chunk]


class Indexer:
    """Writes documents into collections; one writer per collection at a time."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        bm25: Bm25Encoder,
        settings: RagSettings,
        metrics: RagMetrics,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.bm25 = bm25
        self.settings = settings
        self.metrics = metrics
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, collection: str) -> asyncio.Lock:
        return self._locks[collection]

    def _digest(self, doc: Document) -> str:
        return content_hash(
            doc,
            chunk_size=self.settings.chunk_size,
            overlap=self.settings.chunk_overlap,
            model=self.settings.embedding_model,
        )

    async def index(self, collection: str, docs: list[Document]) -> list[Outcome]:
        check_collection(collection)
        _check_batch(docs)
        digests = {doc.id: self._digest(doc) for doc in docs}
        async with self.lock(collection):
            current = await self._manifests(collection, [d.id for d in docs])
            pending = [
                _Pending(d, digests[d.id], self._split(d))
                for d in docs
                if current.get(d.id, {}).get("content_hash") != digests[d.id]
            ]
            written = await self._write(collection, pending) if pending else {}
        outcomes = []
        for doc in docs:
            if doc.id in written:
                outcomes.append(Outcome(doc.id, "indexed", written[doc.id]))
            else:
                outcomes.append(Outcome(doc.id, "unchanged", int(current[doc.id].get("chunks", 0))))
        self.metrics.documents.labels("indexed").inc(len(written))
        self.metrics.documents.labels("unchanged").inc(len(docs) - len(written))
        return outcomes

    def _split(self, doc: Document) -> list[chunking.Chunk]:
        return chunking.split(doc.text, self.settings.chunk_size, self.settings.chunk_overlap)

    async def _manifests(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not await off_loop(lambda: self.store.collection_exists(collection)):
            return {}
        point_ids = [doc_point_id(i) for i in ids]
        records = await off_loop(lambda: self.store.retrieve(collection, point_ids))
        return manifests_by_doc(records)

    async def _write(self, collection: str, pending: list[_Pending]) -> dict[str, int]:
        """Embed and store document groups in turn: a failure keeps the groups already done."""
        written: dict[str, int] = {}
        ensured = False
        for group in _groups(pending, 4 * self.settings.embed_batch):
            texts = [c.text for p in group for c in p.chunks]
            dense = await self.embedder.embed(texts, "embed_documents")
            if not ensured:
                ensure = partial(self.store.ensure_collection, collection, len(dense[0]))
                await off_loop(ensure)
                ensured = True
            offset = 0
            for item in group:
                vectors = dense[offset : offset + len(item.chunks)]
                offset += len(item.chunks)
                points = [
                    chunk_point(
                        item.doc, item.digest, c.index, c.text, v, self.bm25.document(c.text)
                    )
                    for c, v in zip(item.chunks, vectors, strict=True)
                ]
                await self._replace(collection, item, points)
                written[item.doc.id] = len(points)
        return written

    async def _replace(self, collection: str, item: _Pending, points: list[StoredPoint]) -> None:
        for start in range(0, len(points), _UPSERT_BATCH):
            batch = points[start : start + _UPSERT_BATCH]
            await off_loop(partial(self.store.upsert, collection, batch))
        manifest = manifest_point(item.doc, item.digest, len(points))
        await off_loop(lambda: self.store.upsert(collection, [manifest]))
        await off_loop(
            lambda: self.store.delete_where(collection, stale_chunks(item.doc.id, item.digest))
        )
        self.metrics.chunks.inc(len(points))
        log.info("indexed %s/%s: %d chunks", collection, item.doc.id, len(points))

    async def delete_document(self, collection: str, doc_id: str) -> None:
        check_collection(collection)
        self._require(collection, await off_loop(lambda: self.store.collection_exists(collection)))
        async with self.lock(collection):
            found = await off_loop(lambda: self.store.retrieve(collection, [doc_point_id(doc_id)]))
            if not found:
                raise NotFound(
                    f"No document '{doc_id}' in collection '{collection}'.",
                    code="document_not_found",
                )
            # Manifest first: from that instant readers no longer see the chunks.
            await off_loop(lambda: self.store.delete(collection, [doc_point_id(doc_id)]))
            await off_loop(lambda: self.store.delete_where(collection, all_chunks(doc_id)))
        self.metrics.documents.labels("deleted").inc()

    async def drop_collection(self, collection: str) -> None:
        check_collection(collection)
        async with self.lock(collection):
            dropped = await off_loop(lambda: self.store.drop_collection(collection))
        self._require(collection, dropped)

    async def describe(self, collection: str) -> dict[str, Any]:
        documents = await off_loop(lambda: self.store.count(collection, DOCS))
        chunks = await off_loop(lambda: self.store.count(collection, CHUNKS))
        return {"name": collection, "documents": documents, "chunks": chunks}

    async def list_collections(self) -> list[dict[str, Any]]:
        names = await off_loop(self.store.list_collections)
        return [await self.describe(name) for name in names]

    async def list_documents(
        self, collection: str, limit: int, after: str | None
    ) -> dict[str, Any]:
        """One page of the collection's documents (their manifests), with a cursor."""
        check_collection(collection)
        if after is not None and not _is_uuid(after):
            raise BadRequest("Invalid 'after' cursor: pass the 'next' of the previous page.")
        self._require(collection, await off_loop(lambda: self.store.collection_exists(collection)))
        records, nxt = await off_loop(lambda: self.store.scroll(collection, DOCS, limit, after))
        data = [
            {
                "id": r.payload.get("doc_id"),
                "source": r.payload.get("source"),
                "chunks": r.payload.get("chunks"),
                "content_hash": r.payload.get("content_hash"),
                "indexed_at": r.payload.get("indexed_at"),
                "metadata": r.payload.get("metadata") or {},
            }
            for r in records
        ]
        return {"object": "list", "data": data, "next": nxt}

    async def get_collection(self, collection: str) -> dict[str, Any]:
        check_collection(collection)
        self._require(collection, await off_loop(lambda: self.store.collection_exists(collection)))
        return await self.describe(collection)

    @staticmethod
    def _require(collection: str, exists: bool) -> None:
        if not exists:
            raise NotFound(
                f"The collection '{collection}' does not exist.",
                param="collection",
                code="collection_not_found",
            )


def _groups(pending: list[_Pending], max_chunks: int) -> Iterator[list[_Pending]]:
    """Consecutive documents with at most ``max_chunks`` chunks together (or one big one)."""
    group: list[_Pending] = []
    size = 0
    for item in pending:
        if group and size + len(item.chunks) > max_chunks:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item.chunks)
    if group:
        yield group


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _check_batch(docs: list[Document]) -> None:
    seen: set[str] = set()
    for i, doc in enumerate(docs):
        check_document_id(doc.id, f"documents.{i}.id")
        if doc.id in seen:
            raise BadRequest(
                f"The document id '{doc.id}' appears twice in this request.",
                param=f"documents.{i}.id",
                code="duplicate_document_id",
            )
        seen.add(doc.id)
        if not doc.text.strip():
            raise BadRequest(
                f"The document '{doc.id}' has no text.",
                param=f"documents.{i}.text",
                code="empty_document",
            )
