"""Write-ahead records: every write to a collection finishes or is undone, even across a crash.

Before a write changes anything it stores one journal point in the collection
(``kind=journal``: the operation, its documents and their new content hashes),
with the same durability as the data. An index or update then goes:

1. ``writing``: new chunks and *staged* manifests are written (readers see
   neither: they follow the current manifests);
2. ``committed``: the journal point is switched, in one point write: from
   here the write is done, whatever happens;
3. the staged manifests become the current ones, the old versions' chunks and
   the staged points are deleted, and the journal point last.

A delete is logged as ``committed`` at once: its manifest goes, then its chunks.
Whatever stopped a write (an error, a kill, a power cut) leaves its journal
point, and :func:`recover` (at start and before every write) finishes a
``committed`` one and undoes a ``writing`` one. Every step is idempotent, so a
recovery that is itself interrupted is simply run again. Afterwards each
document is wholly at its old or its new version, no chunk is left without
its manifest and the chunk count equals the manifests' sum.

Dropping a collection needs no record: Edge renames the directory away in one
step before deleting it (``rag.store.edge``), a Qdrant server drops in one call.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rag.documents import (
    DOCS,
    JOURNAL,
    KIND_JOURNAL,
    KIND_STAGED,
    all_chunks,
    manifest_from_staged,
    manifests_by_doc,
    stale_chunks,
    version_chunks,
)
from rag.identifiers import doc_point_id, journal_point_id, staged_point_id
from rag.store.base import Record, StoredPoint, VectorStore

log = logging.getLogger("p2.rag.journal")
BATCH = 256
T = TypeVar("T")


class Op(enum.StrEnum):
    INDEX = "index"
    DELETE = "delete"


class State(enum.StrEnum):
    WRITING = "writing"
    COMMITTED = "committed"


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Entry:
    """One write: its documents as (id, new content hash; empty for a delete)."""

    id: str
    op: Op
    state: State
    docs: tuple[tuple[str, str], ...]
    created: bool = False  # the write created the collection: undoing it drops it
    started: float = 0.0

    @classmethod
    def new(cls, op: Op, docs: Sequence[tuple[str, str]], *, created: bool = False) -> Entry:
        state = State.COMMITTED if op is Op.DELETE else State.WRITING
        return cls(uuid.uuid4().hex, op, state, tuple(docs), created, time.time())

    def point(self) -> StoredPoint:
        payload = {
            "kind": KIND_JOURNAL,
            "op_id": self.id,
            "op": self.op.value,
            "state": self.state.value,
            "docs": [list(d) for d in self.docs],
            "created": self.created,
            "started": self.started,
        }
        return StoredPoint(journal_point_id(self.id), payload)

    @classmethod
    def from_record(cls, record: Record) -> Entry:
        p = record.payload
        docs = tuple((str(d[0]), str(d[1])) for d in p.get("docs") or ())
        return cls(
            str(p["op_id"]),
            Op(p["op"]),
            State(p["state"]),
            docs,
            bool(p.get("created")),
            float(p.get("started") or 0.0),
        )

    def staged_ids(self) -> list[str]:
        return [staged_point_id(doc, digest) for doc, digest in self.docs]


def begin(store: VectorStore, collection: str, entry: Entry) -> None:
    store.upsert(collection, [entry.point()])


def commit(store: VectorStore, collection: str, entry: Entry) -> Entry:
    """The commit point of an index: one point write."""
    done = Entry(entry.id, entry.op, State.COMMITTED, entry.docs, entry.created, entry.started)
    store.upsert(collection, [done.point()])
    return done


def pending(store: VectorStore, collection: str) -> list[Entry]:
    """The writes of ``collection`` that did not finish, oldest first."""
    records: list[Record] = []
    after: str | None = None
    while True:
        page, after = store.scroll(collection, JOURNAL, 64, after)
        records += page
        if after is None:
            break
    return sorted((Entry.from_record(r) for r in records), key=lambda e: e.started)


def _current(store: VectorStore, collection: str, docs: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in batches([doc_point_id(d) for d in docs]):
        found.update(manifests_by_doc(store.retrieve(collection, part)))
    return found


def finish(store: VectorStore, collection: str, entry: Entry) -> None:
    """Carry a committed write to its end (idempotent)."""
    if entry.op is Op.DELETE:
        for doc, _ in entry.docs:
            store.delete(collection, [doc_point_id(doc)])
            store.delete_where(collection, all_chunks(doc))
    else:
        staged_ids = entry.staged_ids()
        for part in batches(staged_ids):
            staged = [r.payload for r in store.retrieve(collection, part)]
            manifests = [manifest_from_staged(p) for p in staged if p.get("kind") == KIND_STAGED]
            store.upsert(collection, manifests)
        current = _current(store, collection, [doc for doc, _ in entry.docs])
        for doc, digest in entry.docs:
            if current.get(doc, {}).get("content_hash") == digest:
                store.delete_where(collection, stale_chunks(doc, digest))
        for part in batches(staged_ids):
            store.delete(collection, part)
    store.delete(collection, [journal_point_id(entry.id)])


def undo(store: VectorStore, collection: str, entry: Entry) -> None:
    """Remove what an uncommitted write wrote (idempotent); the documents keep their
    previous versions. A collection the write created, and left empty, is dropped."""
    if entry.created and store.count(collection, DOCS) == 0:
        store.drop_collection(collection)
        return
    current = _current(store, collection, [doc for doc, _ in entry.docs])
    for doc, digest in entry.docs:
        if current.get(doc, {}).get("content_hash") != digest:
            store.delete_where(collection, version_chunks(doc, digest))
    for part in batches(entry.staged_ids()):
        store.delete(collection, part)
    store.delete(collection, [journal_point_id(entry.id)])


def recover(store: VectorStore, collection: str) -> int:
    """Finish or undo every unfinished write of ``collection``; how many there were."""
    entries = pending(store, collection)
    for entry in entries:
        if entry.state is State.COMMITTED:
            log.warning("finishing an interrupted %s in %s", entry.op.value, collection)
            finish(store, collection, entry)
        else:
            log.warning("undoing an interrupted %s in %s", entry.op.value, collection)
            undo(store, collection, entry)
            if not store.collection_exists(collection):
                break
    return len(entries)
