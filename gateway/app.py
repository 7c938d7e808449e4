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
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import config as config_module
from gateway.access import Visibility, access_policy
from gateway.config import DeploymentSpec, GatewayConfig
from gateway.cooldowns import SharedCooldowns
from gateway.finetuned import FineTunedModels
from gateway.forwarding import Forwarder
from gateway.metrics import CountRequests, GatewayMetrics
from gateway.openapi import openapi_document
from gateway.passthrough import JOBS, RAG, ServiceProxy
from gateway.prober import Prober
from gateway.routes import build_routes
from gateway.routing import Registry
from gateway.service import EMBEDDING_GROUP, INTERNAL_GROUPS, RAG_GROUP, GatewayService
from gateway.settings import GatewaySettings
from p2.core.auth import RequireKey
from p2.core.errors import exception_handlers
from p2.core.keys import AccessPolicy, Keyring, KeySettings

log = logging.getLogger("p2.gateway")

# Probes and scrapes: not counted as requests (as every service's CountRequests does).
UNCOUNTED = frozenset(
    {
        "/health",
        "/health/ready",
        "/health/liveliness",
        "/health/liveness",
        "/health/readiness",
        "/metrics",
    }
)


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
        return Response(metrics.exposition(), media_type=metrics.content_type)

    return Route("/metrics", expose, methods=["GET"])


def _attach_adapters(config: GatewayConfig, registry: Registry) -> None:
    """LiteLLM's adapters for the deployments that need them (imported only then)."""
    if not config.native:
        return
    from gateway.adapter import Adapter, load_litellm

    adapter = Adapter(load_litellm())
    for deployment in registry.deployments():
        if deployment.backend is None:
            deployment.adapter = adapter


def _patterns(config: GatewayConfig, jobs: bool) -> list[str]:
    """Model names beyond the listed ones, for the OpenAPI document's ``model``."""
    patterns = ["^ft:[^:]+:.+"] if jobs else []
    if any(d.wildcard for d in config.deployments):
        patterns.append(".+")
    return patterns


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
    config = config or config_module.load(settings.config_path(), lenient=settings.lenient_config)
    keys = keys or KeySettings()
    keyring = keys.keyring(extra_admin_keys=[config.master_key] if config.master_key else ())
    config = with_service(config, EMBEDDING_GROUP, settings.embedding_url, keys.service_key)
    config = with_service(config, RAG_GROUP, settings.rag_url, keys.service_key)
    request_timeout = settings.request_timeout or config.router.timeout
    metrics = GatewayMetrics()
    registry = Registry(config, metrics, settings.connect_timeout, settings.probe_failures)
    _attach_adapters(config, registry)
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
        finetuned=FineTunedModels(settings.jobs_url, timeout=settings.connect_timeout)
        if settings.jobs_url
        else None,
    )
    redis_url = settings.redis_url or config.router.redis_url
    shared = SharedCooldowns(redis_url, registry.cooldowns) if redis_url else None
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
            patterns=_patterns(config, settings.jobs_url is not None),
        )
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        warning = config.audit.warning()
        if warning:
            log.warning("%s", warning)
        await prober.start()
        if shared is not None:
            await shared.start()
        log.info(
            "gateway routing %s",
            "; ".join(
                f"{g} -> " + ", ".join(d.name for d in ds)
                for g, ds in registry.groups.items()
                if g not in INTERNAL_GROUPS
            ),
        )
        try:
            yield
        finally:
            await prober.stop()
            if shared is not None:
                await shared.stop()
            if service.finetuned is not None:
                await service.finetuned.close()
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
