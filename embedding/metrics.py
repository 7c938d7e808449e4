"""Prometheus metrics of the embedding service, on its own registry.

Names follow ``p2_embedding_<what>_<unit>``; counters get ``_total`` on the wire.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EmbeddingMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "p2_embedding_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.inputs = Counter("p2_embedding_inputs", "Texts embedded.", registry=r)
        self.tokens = Counter("p2_embedding_tokens", "Tokens embedded.", registry=r)
        self.truncated = Counter(
            "p2_embedding_truncated_inputs", "Inputs cut to the token limit.", registry=r
        )
        self.rejected = Counter(
            "p2_embedding_rejected_requests",
            "Requests refused because the queue was full.",
            registry=r,
        )
        self.batch_inputs = Histogram(
            "p2_embedding_batch_inputs",
            "Inputs per micro-batch (several requests merged).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "p2_embedding_batch_seconds",
            "Compute time of one micro-batch.",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._queued = Gauge(
            "p2_embedding_queued_inputs", "Inputs waiting for a batch.", registry=r
        )
        self.info = Gauge(
            "p2_embedding_info",
            "The model served and the backend in use.",
            ["model", "backend"],
            registry=r,
        )

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self._queued.set_function(lambda: float(depth()))
