"""Which embedding model a collection was built with, recorded in the collection itself.

One payload-only point (``kind=collection``) holds the model's name from the
collection's first write on; every later write and every query embeds with
that model, whatever ``RAG_EMBEDDING_MODEL`` says now, so vectors of two models
never mix. A collection from before this record uses ``RAG_EMBEDDING_MODEL``.
Another model means rebuilding the collection: ``p2 index --reindex
--embedding-model ID``.
"""

from __future__ import annotations

import uuid

from p2.core.errors import APIError
from rag.identifiers import point_namespace
from rag.store.base import StoredPoint, VectorStore

KIND_COLLECTION = "collection"
POINT_ID = str(uuid.uuid5(point_namespace(), "collection"))


class ModelMismatch(APIError):
    status_code = 409
    error_type = "invalid_request_error"


def recorded_model(store: VectorStore, collection: str) -> str | None:
    """The model ``collection`` records (None: none recorded, or no such collection)."""
    if not store.collection_exists(collection):
        return None
    for record in store.retrieve(collection, [POINT_ID]):
        model = record.payload.get("embedding_model")
        if record.payload.get("kind") == KIND_COLLECTION and isinstance(model, str):
            return model
    return None


def model_point(model: str, dim: int) -> StoredPoint:
    return StoredPoint(
        POINT_ID, {"kind": KIND_COLLECTION, "embedding_model": model, "dimensions": dim}
    )


def mismatch(collection: str, recorded: str, asked: str) -> ModelMismatch:
    return ModelMismatch(
        f"The collection '{collection}' was built with the embedding model '{recorded}', not "
        f"'{asked}'; rebuild it to change models (p2 index PATH --collection {collection} "
        f"--reindex --embedding-model {asked}).",
        param="embedding_model",
        code="embedding_model_mismatch",
    )
