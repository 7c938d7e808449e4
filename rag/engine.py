"""What indexing and retrieval both work with: the store, the two encoders, settings, metrics.

The store's calls are synchronous (see ``rag.store.base``); both sides run them
in worker threads with ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio import to_thread

from p2.core.errors import NotFound
from rag.embedder import Embedder
from rag.metrics import RagMetrics
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import VectorStore


def collection_not_found(collection: str) -> NotFound:
    return NotFound(
        f"The collection '{collection}' does not exist.",
        param="collection",
        code="collection_not_found",
    )


@dataclass(frozen=True)
class Engine:
    """The vector store, the dense (embedding service) and sparse (BM25) encoders,
    the settings and the metrics: one value, built once per app."""

    store: VectorStore
    embedder: Embedder
    bm25: Bm25Encoder
    settings: RagSettings
    metrics: RagMetrics

    async def require_collection(self, collection: str) -> None:
        """404 ``collection_not_found`` unless ``collection`` exists."""
        if not await to_thread.run_sync(self.store.collection_exists, collection):
            raise collection_not_found(collection)
