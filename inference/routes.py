"""HTTP routes of the inference server."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from inference.protocol import ChatCompletionRequest, CompletionRequest
from inference.service import InferenceService
from p2.core.sse import STREAM_RESPONSES


def build_router(service: InferenceService) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions", responses=STREAM_RESPONSES)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await service.chat(body, request)

    @router.post("/v1/completions", responses=STREAM_RESPONSES)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await service.completion(body, request)

    @router.get("/v1/models")
    async def models() -> dict[str, object]:
        return service.list_models()

    return router
