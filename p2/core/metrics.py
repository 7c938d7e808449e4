"""Prometheus exposition on a per-app registry.

Each app owns its ``CollectorRegistry`` (no process-global collectors), so
several apps can live in one process (tests, benchmarks) without clashing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class CountRequests:
    """ASGI middleware: counts requests in ``counter`` by route template and status.

    The route template (``/v1/rag/collections/{name}``), not the raw path, keeps
    label cardinality bounded; probes and scrapes are not counted.
    """

    def __init__(
        self,
        app: ASGIApp,
        counter: Counter,
        skip: frozenset[str] = frozenset({"/health", "/metrics"}),
        templates: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.app = app
        self.counter = counter
        self.skip = skip
        # Route templates, to name the route of a request refused before routing (401).
        self._templates = templates
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.skip:
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.counter.labels(self._template(scope), str(status)).inc()

    def _template(self, scope: Scope) -> str:
        routed = getattr(scope.get("route"), "path", None)
        if routed:
            return str(routed)
        if self._patterns is None:
            self._patterns = [(_pattern(t), t) for t in self._templates()]
        path = scope.get("path", "")
        return next((t for p, t in self._patterns if p.fullmatch(path)), "unmatched")


def _pattern(template: str) -> re.Pattern[str]:
    """``/v1/x/{name}`` and ``/v1/x/{rest:path}`` as a regular expression."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "".join(
            (".+" if p.endswith(":path}") else "[^/]+") if p.startswith("{") else re.escape(p)
            for p in parts
        )
    )
