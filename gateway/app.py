"""App factory: config + settings → the gateway's Starlette app, routes and middleware.

Plain Starlette, not FastAPI (``p2.core.app.service_app``): the gateway
validates little and forwards bytes, and FastAPI's per-request layers
(telemetry, body limit, exit stack) would cost more than the gateway's own
work. The parts every service shares still come from ``p2.core``: the
OpenAI-format error handlers, the key check and the key settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import config as config_module
from gateway.backends import Registry
from gateway.config import DeploymentSpec, GatewayConfig
from gateway.forwarding import Forwarder
from gateway.metrics import CountRequests, GatewayMetrics
from gateway.prober import Prober
from gateway.routes import build_routes
from gateway.service import EMBEDDING_GROUP, INTERNAL_GROUPS, RAG_GROUP, GatewayService
from gateway.settings import GatewaySettings
from p2.core.auth import RequireKey
from p2.core.errors import exception_handlers
from p2.core.keys import Access, AccessPolicy, Keyring, KeySettings, rule

log = logging.getLogger("p2.gateway")

# Probes and scrapes: not counted as requests (as every service's CountRequests does).
UNCOUNTED = frozenset({"/health", "/health/ready", "/metrics"})


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


def access_policy(open_paths: Iterable[str]) -> AccessPolicy:
    """Each of ``GATEWAY_OPEN_PATHS`` needs no key (any method); every other path needs one."""
    return AccessPolicy(tuple(rule(path, Access.OPEN) for path in open_paths))


def _metrics_route(metrics: GatewayMetrics) -> Route:
    async def expose(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", expose, methods=["GET"])


def _middleware(
    settings: GatewaySettings, keyring: Keyring, metrics: GatewayMetrics, routes: list[Route]
) -> list[Middleware]:
    """Request counting outermost (refused requests count too), then the key check."""
    middleware = []
    if settings.http_metrics == "lean":
        paths = frozenset(r.path for r in routes)
        middleware.append(Middleware(CountRequests, metrics=metrics, routes=paths, skip=UNCOUNTED))
    if not keyring.open:
        policy = access_policy(settings.open_path_list())
        middleware.append(Middleware(RequireKey, keyring=keyring, policy=policy))
    return middleware


def create_app(
    settings: GatewaySettings | None = None,
    config: GatewayConfig | None = None,
    *,
    keyring: Keyring | None = None,
) -> Starlette:
    """Build the gateway; ``config`` defaults to the file named by ``settings.config``,
    ``keyring`` to the keys of ``P2_API_KEYS`` and its kin (none: the gateway is open)."""
    settings = settings or GatewaySettings()
    config = config or config_module.load(settings.config_path())
    keyring = keyring if keyring is not None else KeySettings().keyring()
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
    app = Starlette(
        routes=routes,
        middleware=_middleware(settings, keyring, metrics, routes),
        exception_handlers=exception_handlers("gateway"),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.registry = registry
    return app
