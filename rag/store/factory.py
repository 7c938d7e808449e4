"""Choose the store from settings: a server when ``QDRANT_URL`` is set, else Edge on disk."""

from __future__ import annotations

from pathlib import Path

from rag.metrics import RagMetrics
from rag.retry import RetryPolicy
from rag.settings import RagSettings
from rag.store.base import VectorStore
from rag.store.retrying import RetryingStore


def qdrant_policy(settings: RagSettings, metrics: RagMetrics) -> RetryPolicy:
    return RetryPolicy(
        target="qdrant",
        max_retries=settings.qdrant_max_retries,
        min_wait=settings.qdrant_retry_min_wait,
        max_wait=settings.qdrant_retry_max_wait,
        counter=metrics.retries,
    )


def open_store(settings: RagSettings, home: Path, metrics: RagMetrics) -> VectorStore:
    inner: VectorStore
    if settings.qdrant_url:
        from rag.store.server import ServerStore

        inner = ServerStore.connect(
            settings.qdrant_url, settings.qdrant_api_key, settings.qdrant_timeout
        )
    else:
        from rag.store.edge import EdgeStore

        inner = EdgeStore(settings.store_path(home))
    return RetryingStore(inner, qdrant_policy(settings, metrics))


def describe(settings: RagSettings, home: Path) -> str:
    if settings.qdrant_url:
        return f"Qdrant server {settings.qdrant_url}"
    return f"embedded Qdrant Edge at {settings.store_path(home)}"
