"""Prometheus metrics of the RAG service, on a per-app registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class RagMetrics:
    """Requests, retries, indexing work and query latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_requests_total",
            "API requests by path and status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "rag_retries_total",
            "Retries of a transient failure, by dependency and operation.",
            ["target", "operation"],
            registry=self.registry,
        )
        self.documents = Counter(
            "rag_documents_total",
            "Documents submitted for indexing, by outcome (indexed, unchanged, deleted).",
            ["outcome"],
            registry=self.registry,
        )
        self.chunks = Counter(
            "rag_chunks_written_total", "Chunks upserted into the store.", registry=self.registry
        )
        self.query_seconds = Histogram(
            "rag_query_seconds",
            "Retrieval latency (embedding the query plus the store search), by mode.",
            ["mode"],
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.embed_seconds = Histogram(
            "rag_embed_seconds",
            "Time per embedding-service call.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
