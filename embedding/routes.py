"""HTTP routes of the embedding service."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from embedding.protocol import EmbeddingRequest
from embedding.service import EmbeddingService


def build_router(service: EmbeddingService) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> Response:
        return await service.embed(body)

    @router.get("/v1/models")
    async def models() -> dict[str, object]:
        return service.list_models()

    @router.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, object]:
        return service.describe(name)

    return router
