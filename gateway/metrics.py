"""The gateway's Prometheus collectors, all on one per-app registry, and its request counter.

Names follow P2's convention (``p2_gateway_<what>_<unit>``; a Counter gets
``_total`` on the wire). Besides the HTTP requests every service counts, the
gateway records what only it knows: per-backend outcomes, failovers and
fallbacks, backend health, time to first token, tokens and stream
continuations.

With one process the registry is the process's own. With ``GATEWAY_WORKERS``
above one, every worker writes its values to files in one directory per run
(prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``) and any
worker's ``/metrics`` adds up all of them, a worker that died or was
restarted included: counters add up across workers and never go backwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
UNMATCHED = "unmatched"


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        r = self.registry
        self.requests = Counter(
            "p2_gateway_requests",
            "HTTP requests by route and status.",
            ("route", "status"),
            registry=r,
        )
        self.request_duration = Histogram(
            "p2_gateway_request_duration_seconds",
            "From request arrival to the end of the response (the whole stream), by route.",
            ("route",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.backend_requests = Counter(
            "p2_gateway_backend_requests",
            "Requests sent to each backend, by outcome.",
            ("backend", "outcome"),
            registry=r,
        )
        self.backend_errors = Counter(
            "p2_gateway_backend_errors",
            "Failed attempts on each backend, by reason.",
            ("backend", "reason"),
            registry=r,
        )
        self.failovers = Counter(
            "p2_gateway_failovers",
            "Requests moved from one backend to the next.",
            ("from", "to", "reason"),
            registry=r,
        )
        self.fallbacks = Counter(
            "p2_gateway_fallbacks",
            "Requests sent to a fallback group after their group failed.",
            ("from", "to", "reason"),
            registry=r,
        )
        self.backend_up = Gauge(
            "p2_gateway_backend_up",
            "1 when a backend is in rotation, 0 when it is out.",
            ("backend",),
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.ttft = Histogram(
            "p2_gateway_time_to_first_token_seconds",
            "From request arrival to the first streamed token sent to the client.",
            ("model",),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "p2_gateway_tokens",
            "Tokens served, from backend usage (or streamed chunks).",
            ("model", "kind"),
            registry=r,
        )
        self.continuations = Counter(
            "p2_gateway_stream_continuations",
            "Streams continued on another backend after their backend died mid-stream.",
            ("model", "outcome"),
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or every worker's added up."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    content_type = CONTENT_TYPE_LATEST


class CountRequests:
    """Plain ASGI: ``p2_gateway_requests_total`` and the request duration, by route and status.

    ``routes`` are the app's route paths: exact ones are their own label;
    templated ones (``/v1/rag/{path:path}``) label every path that starts with
    their text before the first ``{`` (the longest such prefix wins). Other
    paths count as ``unmatched``. Label children are cached per (route,
    status), so a request costs two dict lookups and two observations, not a
    label resolution each.
    """

    def __init__(
        self, app: ASGIApp, metrics: GatewayMetrics, routes: Iterable[str], skip: frozenset[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        routes = list(routes)
        self.routes = frozenset(r for r in routes if "{" not in r)
        templated = ((r.split("{", 1)[0], r) for r in routes if "{" in r)
        self.templates = tuple(sorted(templated, key=lambda t: len(t[0]), reverse=True))
        self.skip = skip
        self._counts: dict[tuple[str, int], Any] = {}
        self._durations: dict[str, Any] = {}

    def _templated(self, path: str) -> str:
        for prefix, template in self.templates:
            if path.startswith(prefix):
                return template
        return UNMATCHED

    def _record(self, route: str, status: int, seconds: float) -> None:
        count = self._counts.get((route, status))
        if count is None:
            count = self._counts[(route, status)] = self.metrics.requests.labels(route, str(status))
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = self.metrics.request_duration.labels(route)
        count.inc()
        duration.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.skip:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = path if path in self.routes else self._templated(path)
            self._record(route, status, time.perf_counter() - started)
