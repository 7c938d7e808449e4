"""Prometheus metrics of the RAG service, on a per-app registry.

Names follow P2's ``p2_<service>_<what>_<unit>``; counters get ``_total`` on the wire.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class RagMetrics:
    """Requests, retries, indexing work and query latency."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "p2_rag_requests",
            "API requests by route template and HTTP status.",
            ["route", "status"],
            registry=r,
        )
        self.retries = Counter(
            "p2_rag_retries",
            "Retries of a transient failure, by dependency (qdrant, embedding) and operation.",
            ["target", "operation"],
            registry=r,
        )
        self.documents = Counter(
            "p2_rag_documents",
            "Documents indexed, found unchanged or deleted, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.chunks = Counter(
            "p2_rag_chunks_written", "Chunks upserted into the store.", registry=r
        )
        self.query_seconds = Histogram(
            "p2_rag_query_seconds",
            "Retrieval latency (embedding the query plus the store search), by mode.",
            ["mode"],
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.embed_seconds = Histogram(
            "p2_rag_embed_seconds",
            "Time per embedding-service call.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
