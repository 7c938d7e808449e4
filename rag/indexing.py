"""Indexing: chunk, embed, upsert; idempotent, and every write finishes or is undone.

Per request: the changed documents' new chunks and manifests are written
invisibly, the request commits in one point write, then the manifests switch
and the old versions' chunks are deleted (``rag.journal`` keeps the record
that lets a crash at any step be repaired). An unchanged document costs one
manifest read and writes nothing. CPU work (hashing, chunking, BM25) runs in
worker threads, at most ``RAG_WORKERS`` at once, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread

from p2.core.errors import BadRequest, NotFound
from rag import chunking, journal
from rag.collection_model import mismatch, model_point, recorded_model
from rag.documents import (
    CHUNKS,
    DOCS,
    Document,
    chunk_point,
    content_hash,
    manifests_by_doc,
    staged_manifest,
)
from rag.engine import Engine, collection_not_found
from rag.errors import RagError
from rag.identifiers import check_collection, check_document_id, doc_point_id
from rag.journal import Entry, Op
from rag.protocol import Outcome
from rag.sparse import Bm25Encoder
from rag.store.base import StoredPoint

log = logging.getLogger("p2.rag.indexing")
T = TypeVar("T")


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


def _points(
    group: list[_Pending], dense: list[list[float]], bm25: Bm25Encoder
) -> list[StoredPoint]:
    """The chunk points of a group of documents (BM25 computed here, in a worker thread)."""
    points = []
    offset = 0
    for item in group:
        vectors = dense[offset : offset + len(item.chunks)]
        offset += len(item.chunks)
        points += [
            chunk_point(item.doc.id, item.digest, c.index, c.text, v, bm25.document(c.text))
            for c, v in zip(item.chunks, vectors, strict=True)
        ]
    return points


class Indexer:
    """Writes documents into collections; one writer per collection at a time."""

    def __init__(self, engine: Engine, cpu: CapacityLimiter | None = None) -> None:
        self.engine = engine
        self.cpu = cpu or CapacityLimiter(engine.settings.workers)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, collection: str) -> asyncio.Lock:
        return self._locks[collection]

    async def _store(self, call: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(call, *args)

    async def _cpu(self, call: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(call, *args, limiter=self.cpu)

    def _digests(self, docs: list[Document], model: str) -> dict[str, str]:
        settings = self.engine.settings
        return {
            doc.id: content_hash(
                doc, chunk_size=settings.chunk_size, overlap=settings.chunk_overlap, model=model
            )
            for doc in docs
        }

    def _split(self, docs: list[Document]) -> list[list[chunking.Chunk]]:
        settings = self.engine.settings
        return [chunking.split(d.text, settings.chunk_size, settings.chunk_overlap) for d in docs]

    async def recover(self, collection: str) -> None:
        """Finish or undo the collection's interrupted writes (under its lock)."""
        store = self.engine.store
        if await self._store(store.collection_exists, collection):
            await self._store(journal.recover, store, collection)

    async def recover_all(self) -> None:
        """At start: repair every collection; a store that is down is repaired by the next write."""
        try:
            names = await self._store(self.engine.store.list_collections)
            for name in names:
                async with self.lock(name):
                    await self.recover(name)
        except (RagError, OSError) as exc:  # each write recovers its collection first anyway
            log.warning("could not check the collections for interrupted writes: %s", exc)

    async def model_of(self, collection: str) -> str:
        """The embedding model ``collection`` is built with (``rag.collection_model``)."""
        recorded = await self._store(recorded_model, self.engine.store, collection)
        return recorded or self.engine.settings.embedding_model

    async def _model_for(self, collection: str, asked: str | None) -> str:
        """The model this write embeds with: the collection's; a new one takes ``asked``."""
        exists = await self._store(self.engine.store.collection_exists, collection)
        model = await self.model_of(collection) if exists else asked
        if asked is not None and model != asked:
            raise mismatch(collection, str(model), asked)
        return model or self.engine.settings.embedding_model

    async def index(
        self, collection: str, docs: list[Document], embedding_model: str | None = None
    ) -> list[DocumentOutcome]:
        """Index ``docs``; a new collection is built with ``embedding_model`` (default
        ``RAG_EMBEDDING_MODEL``), an existing one only with the model it records."""
        check_collection(collection)
        _check_batch(docs)
        async with self.lock(collection):
            await self.recover(collection)
            model = await self._model_for(collection, embedding_model)
            digests = await self._cpu(self._digests, docs, model)
            current = await self._manifests(collection, [d.id for d in docs])
            changed = [
                d for d in docs if current.get(d.id, {}).get("content_hash") != digests[d.id]
            ]
            chunks = await self._cpu(self._split, changed)
            pending = [_Pending(d, digests[d.id], c) for d, c in zip(changed, chunks, strict=True)]
            written = await self._write(collection, pending, model) if pending else {}
        outcomes = []
        for doc in docs:
            if doc.id in written:
                outcomes.append(DocumentOutcome(doc.id, Outcome.INDEXED, written[doc.id]))
            else:
                chunk_count = int(current[doc.id].get("chunks", 0))
                outcomes.append(DocumentOutcome(doc.id, Outcome.UNCHANGED, chunk_count))
        documents = self.engine.metrics.documents
        documents.labels(Outcome.INDEXED.value).inc(len(written))
        documents.labels(Outcome.UNCHANGED.value).inc(len(docs) - len(written))
        return outcomes

    async def _manifests(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        store = self.engine.store
        if not await self._store(store.collection_exists, collection):
            return {}
        found: dict[str, dict[str, Any]] = {}
        for part in journal.batches([doc_point_id(i) for i in ids]):
            found.update(manifests_by_doc(await self._store(store.retrieve, collection, part)))
        return found

    async def _write(self, collection: str, pending: list[_Pending], model: str) -> dict[str, int]:
        """Write every pending document, commit, switch: all of them or none."""
        engine = self.engine
        store = engine.store
        entry: Entry | None = None
        try:
            for group in _groups(pending, 4 * engine.settings.embed_batch):
                texts = [c.text for p in group for c in p.chunks]
                dense = await engine.embedder.embed(texts, "embed_documents", model)
                if entry is None:
                    entry = await self._begin(collection, pending, len(dense[0]), model)
                points = await self._cpu(_points, group, dense, engine.bm25)
                for part in journal.batches(points):
                    await self._store(store.upsert, collection, part)
            staged = [staged_manifest(p.doc, p.digest, len(p.chunks)) for p in pending]
            for part in journal.batches(staged):
                await self._store(store.upsert, collection, part)
            assert entry is not None  # every pending document has a chunk
            entry = await self._store(journal.commit, store, collection, entry)
        except Exception:
            if entry is not None:
                await self._undo(collection, entry)
            raise
        await self._store(journal.finish, store, collection, entry)
        chunks = sum(len(p.chunks) for p in pending)
        engine.metrics.chunks.inc(chunks)
        log.info("indexed %d documents into %s: %d chunks", len(pending), collection, chunks)
        return {p.doc.id: len(p.chunks) for p in pending}

    async def _begin(self, collection: str, pending: list[_Pending], dim: int, model: str) -> Entry:
        store = self.engine.store
        existed = await self._store(store.collection_exists, collection)
        await self._store(store.ensure_collection, collection, dim)
        docs = [(p.doc.id, p.digest) for p in pending]
        entry = Entry.new(Op.INDEX, docs, created=not existed)
        await self._store(journal.begin, store, collection, entry)
        if not existed:  # journaled: undone with the collection if this first write fails
            await self._store(store.upsert, collection, [model_point(model, dim)])
        return entry

    async def _undo(self, collection: str, entry: Entry) -> None:
        try:
            await self._store(journal.undo, self.engine.store, collection, entry)
        except (RagError, OSError) as exc:  # the journal point stays: the next write undoes it
            log.warning("could not undo a failed write to %s yet: %s", collection, exc)

    async def delete_document(self, collection: str, doc_id: str) -> None:
        store = self.engine.store
        check_collection(collection)
        await self.engine.require_collection(collection)
        async with self.lock(collection):
            await self.recover(collection)
            if not await self._store(store.retrieve, collection, [doc_point_id(doc_id)]):
                raise NotFound(
                    f"No document '{doc_id}' in collection '{collection}'.",
                    code="document_not_found",
                )
            entry = Entry.new(Op.DELETE, [(doc_id, "")])
            await self._store(journal.begin, store, collection, entry)
            # Manifest first: from that instant readers no longer see the chunks.
            await self._store(journal.finish, store, collection, entry)
        self.engine.metrics.documents.labels(Outcome.DELETED.value).inc()

    async def drop_collection(self, collection: str) -> None:
        check_collection(collection)
        async with self.lock(collection):
            dropped = await self._store(self.engine.store.drop_collection, collection)
        if not dropped:
            raise collection_not_found(collection)

    async def describe(self, collection: str) -> dict[str, Any]:
        store = self.engine.store
        documents = await self._store(store.count, collection, DOCS)
        chunks = await self._store(store.count, collection, CHUNKS)
        model = await self.model_of(collection)
        return {
            "name": collection,
            "documents": documents,
            "chunks": chunks,
            "embedding_model": model,
        }

    async def list_collections(self) -> list[dict[str, Any]]:
        names = await self._store(self.engine.store.list_collections)
        return [await self.describe(name) for name in names]

    async def list_documents(
        self, collection: str, limit: int, after: str | None
    ) -> dict[str, Any]:
        """One page of the collection's documents (their manifests), with a cursor."""
        check_collection(collection)
        if after is not None and not _is_uuid(after):
            raise BadRequest("Invalid 'after' cursor: pass the 'next' of the previous page.")
        await self.engine.require_collection(collection)
        records, nxt = await self._store(self.engine.store.scroll, collection, DOCS, limit, after)
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
        if not doc.text or doc.text.isspace():
            raise BadRequest(
                f"The document '{doc.id}' has no text.",
                param=f"documents.{i}.text",
                code="empty_document",
            )
