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
from typing import Any

from anyio import to_thread

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
from rag.engine import Engine, collection_not_found
from rag.identifiers import check_collection, check_document_id, doc_point_id
from rag.protocol import Outcome
from rag.store.base import StoredPoint

log = logging.getLogger("p2.rag.indexing")
_UPSERT_BATCH = 256


@dataclass(frozen=True)
class DocumentOutcome:
    """One document of an indexing request: indexed or unchanged, and its chunk count."""

    id: str
    status: Outcome
    chunks: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "chunks": self.chunks}


@dataclass
class _Pending:
    doc: Document
    digest: str
    chunks: list[chunking.Chunk]


class Indexer:
    """Writes documents into collections; one writer per collection at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, collection: str) -> asyncio.Lock:
        return self._locks[collection]

    def _digest(self, doc: Document) -> str:
        settings = self.engine.settings
        return content_hash(
            doc,
            chunk_size=settings.chunk_size,
            overlap=settings.chunk_overlap,
            model=settings.embedding_model,
        )

    async def index(self, collection: str, docs: list[Document]) -> list[DocumentOutcome]:
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
                outcomes.append(DocumentOutcome(doc.id, Outcome.INDEXED, written[doc.id]))
            else:
                chunks = int(current[doc.id].get("chunks", 0))
                outcomes.append(DocumentOutcome(doc.id, Outcome.UNCHANGED, chunks))
        documents = self.engine.metrics.documents
        documents.labels(Outcome.INDEXED.value).inc(len(written))
        documents.labels(Outcome.UNCHANGED.value).inc(len(docs) - len(written))
        return outcomes

    def _split(self, doc: Document) -> list[chunking.Chunk]:
        settings = self.engine.settings
        return chunking.split(doc.text, settings.chunk_size, settings.chunk_overlap)

    async def _manifests(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        store = self.engine.store
        if not await to_thread.run_sync(store.collection_exists, collection):
            return {}
        point_ids = [doc_point_id(i) for i in ids]
        return manifests_by_doc(await to_thread.run_sync(store.retrieve, collection, point_ids))

    async def _write(self, collection: str, pending: list[_Pending]) -> dict[str, int]:
        """Embed and store document groups in turn: a failure keeps the groups already done."""
        engine = self.engine
        written: dict[str, int] = {}
        ensured = False
        for group in _groups(pending, 4 * engine.settings.embed_batch):
            texts = [c.text for p in group for c in p.chunks]
            dense = await engine.embedder.embed(texts, "embed_documents")
            if not ensured:
                await to_thread.run_sync(engine.store.ensure_collection, collection, len(dense[0]))
                ensured = True
            offset = 0
            for item in group:
                vectors = dense[offset : offset + len(item.chunks)]
                offset += len(item.chunks)
                points = [
                    chunk_point(
                        item.doc, item.digest, c.index, c.text, v, engine.bm25.document(c.text)
                    )
                    for c, v in zip(item.chunks, vectors, strict=True)
                ]
                await self._replace(collection, item, points)
                written[item.doc.id] = len(points)
        return written

    async def _replace(self, collection: str, item: _Pending, points: list[StoredPoint]) -> None:
        store = self.engine.store
        for start in range(0, len(points), _UPSERT_BATCH):
            batch = points[start : start + _UPSERT_BATCH]
            await to_thread.run_sync(store.upsert, collection, batch)
        manifest = manifest_point(item.doc, item.digest, len(points))
        await to_thread.run_sync(store.upsert, collection, [manifest])
        stale = stale_chunks(item.doc.id, item.digest)
        await to_thread.run_sync(store.delete_where, collection, stale)
        self.engine.metrics.chunks.inc(len(points))
        log.info("indexed %s/%s: %d chunks", collection, item.doc.id, len(points))

    async def delete_document(self, collection: str, doc_id: str) -> None:
        store = self.engine.store
        check_collection(collection)
        await self.engine.require_collection(collection)
        manifest_ids = [doc_point_id(doc_id)]
        async with self.lock(collection):
            if not await to_thread.run_sync(store.retrieve, collection, manifest_ids):
                raise NotFound(
                    f"No document '{doc_id}' in collection '{collection}'.",
                    code="document_not_found",
                )
            # Manifest first: from that instant readers no longer see the chunks.
            await to_thread.run_sync(store.delete, collection, manifest_ids)
            await to_thread.run_sync(store.delete_where, collection, all_chunks(doc_id))
        self.engine.metrics.documents.labels(Outcome.DELETED.value).inc()

    async def drop_collection(self, collection: str) -> None:
        check_collection(collection)
        async with self.lock(collection):
            dropped = await to_thread.run_sync(self.engine.store.drop_collection, collection)
        if not dropped:
            raise collection_not_found(collection)

    async def describe(self, collection: str) -> dict[str, Any]:
        store = self.engine.store
        documents = await to_thread.run_sync(store.count, collection, DOCS)
        chunks = await to_thread.run_sync(store.count, collection, CHUNKS)
        return {"name": collection, "documents": documents, "chunks": chunks}

    async def list_collections(self) -> list[dict[str, Any]]:
        names = await to_thread.run_sync(self.engine.store.list_collections)
        return [await self.describe(name) for name in names]

    async def list_documents(
        self, collection: str, limit: int, after: str | None
    ) -> dict[str, Any]:
        """One page of the collection's documents (their manifests), with a cursor."""
        check_collection(collection)
        if after is not None and not _is_uuid(after):
            raise BadRequest("Invalid 'after' cursor: pass the 'next' of the previous page.")
        await self.engine.require_collection(collection)
        records, nxt = await to_thread.run_sync(
            self.engine.store.scroll, collection, DOCS, limit, after
        )
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
        await self.engine.require_collection(collection)
        return await self.describe(collection)


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
