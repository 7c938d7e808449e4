"""Collection names, document ids and the deterministic point ids derived from them.

Point ids are UUIDv5 of (document id, content hash, chunk index): re-sending
the same content rewrites the same points, so a retried or resumed indexing
run can never duplicate a chunk. Manifests, staged manifests and journal
records get ids of their own namespaces.
"""

from __future__ import annotations

import re
import uuid

from p2.core.errors import BadRequest

_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_NAMESPACE = uuid.UUID("8f1c2b1e-4d6a-5c3e-9b7a-2e0f6d5c4b3a")
MAX_DOC_ID = 512


def is_collection_name(name: str) -> bool:
    return _COLLECTION.fullmatch(name) is not None


def check_collection(name: str, param: str = "collection") -> str:
    if not is_collection_name(name):
        raise BadRequest(
            f"Invalid collection name '{name[:80]}': use 1-63 letters, digits, '_' or '-', "
            "starting with a letter or digit.",
            param=param,
            code="invalid_collection_name",
        )
    return name


def check_document_id(doc_id: str, param: str = "id") -> str:
    if not doc_id or len(doc_id) > MAX_DOC_ID or any(ord(c) < 32 for c in doc_id):
        raise BadRequest(
            f"Invalid document id '{doc_id[:80]}': use 1-{MAX_DOC_ID} printable characters.",
            param=param,
            code="invalid_document_id",
        )
    return doc_id


def point_namespace() -> uuid.UUID:
    """The namespace of every point id RAG derives (records of its own included)."""
    return _NAMESPACE


def chunk_point_id(doc_id: str, content_hash: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"chunk\x00{doc_id}\x00{content_hash}\x00{index}"))


def doc_point_id(doc_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"doc\x00{doc_id}"))


def staged_point_id(doc_id: str, content_hash: str) -> str:
    """The manifest a write has prepared for a document version, before it commits."""
    return str(uuid.uuid5(_NAMESPACE, f"staged\x00{doc_id}\x00{content_hash}"))


def journal_point_id(operation: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"journal\x00{operation}"))
