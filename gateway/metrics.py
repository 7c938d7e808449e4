"""The gateway's Prometheus collectors, all on one per-app registry.

HTTP request metrics come from prometheus-fastapi-instrumentator's ASGI
middleware; the gateway adds what only it knows: per-backend outcomes,
failovers, backend health, time to first token and tokens. One process owns
the registry, so counters never go backwards between scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.backend_requests = Counter(
            "gateway_backend_requests",
            "Requests sent to each backend, by outcome.",
            ("backend", "outcome"),
            registry=r,
        )
        self.backend_errors = Counter(
            "gateway_backend_errors",
            "Failed attempts on each backend, by reason.",
            ("backend", "reason"),
            registry=r,
        )
        self.failovers = Counter(
            "failovers",
            "Requests moved from one backend to the next.",
            ("from", "to", "reason"),
            registry=r,
        )
        self.backend_up = Gauge(
            "gateway_backend_up",
            "1 when a backend is in rotation, 0 when it is out.",
            ("backend",),
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "From request arrival to the first streamed token sent to the client.",
            ("model",),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens served, from backend usage (or streamed chunks).",
            ("model", "kind"),
            registry=r,
        )
        self.continuations = Counter(
            "gateway_stream_continuations",
            "Streams continued on another backend after their backend died mid-stream.",
            ("model", "outcome"),
            registry=r,
        )
