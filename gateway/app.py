"""App factory: config + settings → the gateway's Starlette app, routes and middleware.

Plain Starlette, not FastAPI (``p2.core.app.service_app``): the gateway
validates little and forwards bytes, and FastAPI's per-request layers
(telemetry, body limit, exit stack) would cost more than the gateway's own
work. The parts every service shares still come from ``p2.core``: the
OpenAI-format error handlers, the key check and the key settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import config as config_module
from gateway.access import Visibility, access_policy
from gateway.backends import Registry
from gateway.config import DeploymentSpec, GatewayConfig
from gateway.forwarding import Forwarder
from gateway.metrics import CountRequests, GatewayMetrics
from gateway.openapi import openapi_document
from gateway.passthrough import JOBS, RAG, ServiceProxy
from gateway.prober import Prober
from gateway.routes import build_routes
from gateway.service import EMBEDDING_GROUP, INTERNAL_GROUPS, RAG_GROUP, GatewayService
from gateway.settings import GatewaySettings
from p2.core.auth import RequireKey
from p2.core.errors import exception_handlers
from p2.core.keys import AccessPolicy, Keyring, KeySettings

log = logging.getLogger("p2.gateway")

# Probes and scrapes: not counted as requests (as every service's CountRequests does).
UNCOUNTED = frozenset({"/health", "/health/ready", "/metrics"})


def service_api_base(url: str) -> str:
    """A service URL may be its root or its ``/v1``; backends want ``/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def with_service(
    config: GatewayConfig, group: str, url: str | None, key: str | None
) -> GatewayConfig:
    """Add an internal group served by one P2 service (embeddings, RAG), called with ``key``
    (``P2_SERVICE_KEY``: P2's services call each other with it)."""
    if not url:
        return config
    spec = DeploymentSpec(group, "", service_api_base(url), key, 1, len(config.deployments))
    return replace(config, deployments=(*config.deployments, spec))


def _metrics_route(metrics: GatewayMetrics) -> Route:
    async def expose(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", expose, methods=["GET"])


def _middleware(
    settings: GatewaySettings,
    keyring: Keyring,
    policy: AccessPolicy,
    metrics: GatewayMetrics,
    routes: list[Route],
) -> list[Middleware]:
    """Request counting outermost (refused requests count too), then the key check."""
    middleware = []
    if settings.http_metrics == "lean":
        paths = [r.path for r in routes]
        middleware.append(Middleware(CountRequests, metrics=metrics, routes=paths, skip=UNCOUNTED))
    if not keyring.open:
        middleware.append(Middleware(RequireKey, keyring=keyring, policy=policy))
    return middleware


def create_app(
    settings: GatewaySettings | None = None,
    config: GatewayConfig | None = None,
    *,
    keys: KeySettings | None = None,
) -> Starlette:
    """Build the gateway; ``config`` defaults to the file named by ``settings.config``,
    ``keys`` to ``P2_API_KEYS`` and its kin (none: the gateway is open). The config's
    ``general_settings.master_key`` is an admin key too."""
    settings = settings or GatewaySettings()
    config = config or config_module.load(settings.config_path())
    keys = keys or KeySettings()
    keyring = keys.keyring(extra_admin_keys=[config.master_key] if config.master_key else ())
    config = with_service(config, EMBEDDING_GROUP, settings.embedding_url, keys.service_key)
    config = with_service(config, RAG_GROUP, settings.rag_url, keys.service_key)
    request_timeout = settings.request_timeout or config.router.timeout
    metrics = GatewayMetrics()
    registry = Registry(config, metrics, settings.connect_timeout, settings.probe_failures)
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
    proxy = ServiceProxy(
        {RAG: settings.rag_url, JOBS: settings.jobs_url},
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        connect_timeout=settings.connect_timeout,
        timeout=request_timeout,
    )
    prober = Prober(registry, settings.probe_interval, settings.probe_timeout)
    policy = access_policy(settings.open_path_list())
    openapi = orjson.dumps(
        openapi_document(
            service.known_models(),
            rag=settings.rag_url is not None,
            embeddings=settings.embedding_url is not None,
            policy=policy,
        )
    )

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
            await proxy.close()
            registry.close()

    routes = [
        *build_routes(service, Visibility(keyring), proxy, openapi),
        _metrics_route(metrics),
    ]
    app = Starlette(
        routes=routes,
        middleware=_middleware(settings, keyring, policy, metrics, routes),
        exception_handlers=exception_handlers("gateway"),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.keyring = keyring
    app.state.registry = registry
    return app
