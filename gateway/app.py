"""App factory: config + settings → the gateway's Starlette app, routes and middleware.

Plain Starlette, not FastAPI: the gateway validates little and forwards
bytes, and FastAPI's per-request layers (telemetry, body limit, exit stack)
would cost more than the gateway's own work.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import config as config_module
from gateway.auth import ApiKeyAuth
from gateway.backends import Registry
from gateway.config import DeploymentSpec, GatewayConfig
from gateway.forwarding import Forwarder
from gateway.httpmetrics import HttpMetrics, HttpMetricsMiddleware
from gateway.metrics import GatewayMetrics
from gateway.prober import Prober
from gateway.routes import build_routes
from gateway.serving import EMBEDDING_GROUP, INTERNAL_GROUPS, RAG_GROUP, GatewayService
from gateway.settings import GatewaySettings
from p2.core.errors import exception_handlers

log = logging.getLogger("p2.gateway")


def service_api_base(url: str) -> str:
    """A service URL may be its root or its ``/v1``; backends want ``/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def with_service(config: GatewayConfig, group: str, url: str | None) -> GatewayConfig:
    """Add an internal group served by one P2 service (embeddings, RAG)."""
    if not url:
        return config
    spec = DeploymentSpec(group, "", service_api_base(url), None, 1, len(config.deployments))
    return replace(config, deployments=(*config.deployments, spec))


def _instrumentation(metrics: GatewayMetrics) -> Middleware:
    """prometheus-fastapi-instrumentator's ASGI middleware (works on any Starlette app)."""
    from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware

    return Middleware(
        PrometheusInstrumentatorMiddleware,
        registry=metrics.registry,
        excluded_handlers=["/metrics"],
        should_group_status_codes=False,
    )


def _http_metrics(kind: str, metrics: GatewayMetrics, routes: list[Route]) -> list[Middleware]:
    if kind == "instrumentator":
        return [_instrumentation(metrics)]
    if kind == "lean":
        paths = frozenset(r.path for r in routes)
        return [
            Middleware(
                HttpMetricsMiddleware,
                metrics=HttpMetrics(metrics.registry),
                handlers=paths,
                excluded=frozenset({"/metrics"}),
            )
        ]
    return []


def _metrics_route(metrics: GatewayMetrics) -> Route:
    async def expose(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", expose, methods=["GET"])


def create_app(
    settings: GatewaySettings | None = None, config: GatewayConfig | None = None
) -> Starlette:
    """Build the gateway; ``config`` defaults to the file named by ``settings.config``."""
    settings = settings or GatewaySettings()
    config = config or config_module.load(settings.config_path())
    config = with_service(config, EMBEDDING_GROUP, settings.embedding_url)
    config = with_service(config, RAG_GROUP, settings.rag_url)
    request_timeout = settings.request_timeout or config.router.timeout
    metrics = GatewayMetrics()
    registry = Registry(config, metrics, settings.connect_timeout)
    forwarder = Forwarder(
        registry,
        metrics,
        first_byte_timeout=settings.first_byte_timeout,
        probe_timeout=settings.probe_timeout,
        read_timeout=max(settings.stream_idle_timeout, request_timeout),
    )
    service = GatewayService(
        registry,
        forwarder,
        metrics,
        request_timeout=request_timeout,
        max_body_bytes=settings.max_body_bytes,
        stream_idle_timeout=settings.stream_idle_timeout,
        embeddings=settings.embedding_url is not None,
    )
    prober = Prober(registry, settings.probe_interval, settings.probe_timeout)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await prober.start()
        log.info(
            "gateway routing %s",
            "; ".join(
                f"{g} -> " + ", ".join(d.backend.name for d in ds)
                for g, ds in registry.groups.items()
                if g not in INTERNAL_GROUPS
            ),
        )
        try:
            yield
        finally:
            await prober.stop()
            registry.close()

    routes = [*build_routes(service), _metrics_route(metrics)]
    middleware = _http_metrics(settings.http_metrics, metrics, routes)
    middleware.append(
        Middleware(ApiKeyAuth, keys=settings.keys(), open_paths=settings.open_path_set())
    )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers("gateway"),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.prober = prober
    return app
