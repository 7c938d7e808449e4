"""What a stored document looks like: chunk payloads and the per-document manifest.

Each document has one payload-only *manifest* point (``kind=doc``) naming its
current content hash, its chunk count, its source and its metadata (held there
once, not copied into every chunk). Readers keep only chunks whose hash
matches their document's manifest, so switching the manifest is the moment a
changed document's new chunks replace the old ones. A write prepares the new
manifests as *staged* points (``kind=staged``) before it commits (see
``rag.journal``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from rag.identifiers import chunk_point_id, doc_point_id, staged_point_id
from rag.store.base import Record, Sparse, StoredPoint, Where

KIND_CHUNK = "chunk"
KIND_DOC = "doc"
KIND_STAGED = "staged"
KIND_JOURNAL = "journal"
CHUNKS = Where(must=(("kind", KIND_CHUNK),))
DOCS = Where(must=(("kind", KIND_DOC),))
JOURNAL = Where(must=(("kind", KIND_JOURNAL),))


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any]
    source: str


def content_hash(doc: Document, *, chunk_size: int, overlap: int, model: str) -> str:
    """Changes whenever the text, metadata, source or chunking/embedding settings change."""
    blob = json.dumps(
        {
            "text": doc.text,
            "metadata": doc.metadata,
            "source": doc.source,
            "chunking": [chunk_size, overlap],
            "model": model,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def chunk_point(
    doc_id: str, digest: str, index: int, text: str, dense: list[float], sparse: Sparse
) -> StoredPoint:
    payload = {
        "kind": KIND_CHUNK,
        "doc_id": doc_id,
        "chunk_index": index,
        "text": text,
        "content_hash": digest,
    }
    return StoredPoint(chunk_point_id(doc_id, digest, index), payload, dense, sparse)


def staged_manifest(doc: Document, digest: str, chunks: int) -> StoredPoint:
    """The manifest of a version being written, under an id readers never look up."""
    payload = {
        "kind": KIND_STAGED,
        "doc_id": doc.id,
        "source": doc.source,
        "content_hash": digest,
        "chunks": chunks,
        "metadata": doc.metadata,
        "indexed_at": int(time.time()),
    }
    return StoredPoint(staged_point_id(doc.id, digest), payload)


def manifest_from_staged(staged: dict[str, Any]) -> StoredPoint:
    """The staged manifest made current: the same payload under the document's manifest id."""
    return StoredPoint(doc_point_id(str(staged["doc_id"])), {**staged, "kind": KIND_DOC})


def manifests_by_doc(records: list[Record]) -> dict[str, dict[str, Any]]:
    return {
        str(r.payload["doc_id"]): r.payload
        for r in records
        if r.payload.get("kind") == KIND_DOC and "doc_id" in r.payload
    }


def stale_chunks(doc_id: str, keep_hash: str) -> Where:
    """This document's chunks of any other version."""
    return Where(
        must=(("kind", KIND_CHUNK), ("doc_id", doc_id)), must_not=(("content_hash", keep_hash),)
    )


def version_chunks(doc_id: str, digest: str) -> Where:
    """This document's chunks of one version."""
    return Where(must=(("kind", KIND_CHUNK), ("doc_id", doc_id), ("content_hash", digest)))


def all_chunks(doc_id: str) -> Where:
    return Where(must=(("kind", KIND_CHUNK), ("doc_id", doc_id)))
