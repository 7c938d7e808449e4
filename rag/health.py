"""``GET /health``: 200 when Qdrant, the embedding service and the gateway all answer.

Otherwise 503 in OpenAI's error format, naming each dependency that does not.
"""

from __future__ import annotations

import asyncio

import httpx
from anyio import to_thread
from fastapi.responses import JSONResponse

from p2.core.errors import error_response
from rag.embedder import Embedder
from rag.errors import EmbeddingError, StoreError
from rag.store.base import VectorStore


class HealthCheck:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        gateway: httpx.AsyncClient,
        *,
        embedding_url: str,
        gateway_url: str,
        timeout: float,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.gateway = gateway
        self.embedding_url = embedding_url
        self.gateway_url = gateway_url
        self.timeout = timeout

    async def _qdrant(self) -> str | None:
        try:
            await asyncio.wait_for(to_thread.run_sync(self.store.ping), self.timeout)
        except (StoreError, TimeoutError) as exc:
            return f"qdrant ({exc or 'timed out'})"
        return None

    async def _embedding(self) -> str | None:
        try:
            await self.embedder.ping(self.timeout)
        except EmbeddingError as exc:
            return f"embedding service at {self.embedding_url} ({exc})"
        return None

    async def _gateway(self) -> str | None:
        try:
            response = await self.gateway.get("/health", timeout=self.timeout)
        except httpx.HTTPError as exc:
            return f"gateway at {self.gateway_url} (unreachable: {type(exc).__name__})"
        if response.status_code != 200:
            return f"gateway at {self.gateway_url} (HTTP {response.status_code})"
        return None

    async def respond(self) -> JSONResponse:
        problems = [
            p for p in await asyncio.gather(self._qdrant(), self._embedding(), self._gateway()) if p
        ]
        if not problems:
            return JSONResponse(
                {"status": "ok", "qdrant": "ok", "embedding": "ok", "gateway": "ok"}
            )
        return error_response(
            503,
            "Unavailable: " + "; ".join(problems),
            error_type="unavailable_error",
            code="dependency_unavailable",
            headers={"Retry-After": "1"},
        )
