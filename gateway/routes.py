"""The gateway's HTTP routes: thin Starlette endpoints over ``GatewayService``.

Plain Starlette routes (no FastAPI dependency resolution or response
validation) keep the per-request cost low; the service does the work. The
pass-through routes to other services come from ``gateway.passthrough``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.access import Visibility
from gateway.passthrough import SERVICE_ROUTES, ServiceProxy
from gateway.service import GatewayService, json_response


def build_routes(
    service: GatewayService, visibility: Visibility, proxy: ServiceProxy, openapi: bytes
) -> list[Route]:
    async def chat_completions(request: Request) -> Any:
        return await service.chat(request)

    async def completions(request: Request) -> Any:
        return await service.completions(request)

    async def embeddings(request: Request) -> Response:
        return await service.embeddings(request)

    async def models(request: Request) -> Response:
        return await service.models(
            admin=visibility.admin(request.scope), authorization=authorization(request)
        )

    async def health(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(request: Request) -> Response:
        return service.ready(admin=visibility.admin(request.scope))

    async def openapi_json(_: Request) -> Response:
        return Response(openapi, media_type="application/json")

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        # LiteLLM's probe paths, so Kubernetes probes written for LiteLLM work unchanged.
        Route("/health/liveliness", health, methods=["GET"]),
        Route("/health/liveness", health, methods=["GET"]),
        Route("/health/readiness", ready, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    for route in SERVICE_ROUTES:
        for template in route.templates:
            routes.append(Route(template, proxy.endpoint(route), methods=list(route.methods)))
    return routes


def authorization(request: Request) -> bytes | None:
    """The caller's ``Authorization`` header, passed on to the job service."""
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None
