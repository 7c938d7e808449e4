"""What a stored document looks like: chunk payloads and the per-document manifest.

Each document has one payload-only *manifest* point (``kind=doc``) naming its
current content hash. Readers keep only chunks whose hash matches their
document's manifest, so switching the manifest is the atomic moment a changed
document's new chunks replace the old ones.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from rag.identifiers import chunk_point_id, doc_point_id
from rag.store.base import Record, Sparse, StoredPoint, Where

KIND_CHUNK = "chunk"
KIND_DOC = "doc"
CHUNKS = Where(must=(("kind", KIND_CHUNK),))
DOCS = Where(must=(("kind", KIND_DOC),))


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
    doc: Document, digest: str, index: int, text: str, dense: list[float], sparse: Sparse
) -> StoredPoint:
    payload = {
        "kind": KIND_CHUNK,
        "doc_id": doc.id,
        "source": doc.source,
        "chunk_index": index,
        "text": text,
        "content_hash": digest,
        "metadata": doc.metadata,
    }
    return StoredPoint(chunk_point_id(doc.id, digest, index), payload, dense, sparse)


def manifest_point(doc: Document, digest: str, chunks: int) -> StoredPoint:
    payload = {
        "kind": KIND_DOC,
        "doc_id": doc.id,
        "source": doc.source,
        "content_hash": digest,
        "chunks": chunks,
        "metadata": doc.metadata,
        "indexed_at": int(time.time()),
    }
    return StoredPoint(doc_point_id(doc.id), payload)


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


def all_chunks(doc_id: str) -> Where:
    return Where(must=(("kind", KIND_CHUNK), ("doc_id", doc_id)))
