"""Liveness and readiness, kept apart so that an outage elsewhere never restarts RAG.

``GET /health`` is liveness: 200 ``{"status": "ok"}`` whenever the process and
its event loop answer, whatever its dependencies do; the supervisor and
compose restart on it alone, so an embedding outage cannot kill indexing in
progress. ``GET /health/ready`` is readiness: 200 when Qdrant, the embedding
service and the gateway all answer, else 503 naming the ones that do not
(``{"status": "unavailable", "unavailable": ["embedding"]}``). Where they are
and how they failed is told only to an admin key (and to everyone while the
service runs without keys), and always to the log.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from p2.core.auth import bearer_token
from p2.core.keys import Access, Keyring
from rag.embedder import Embedder
from rag.errors import EmbeddingError, StoreError
from rag.store.base import VectorStore

log = logging.getLogger("p2.rag.health")
Problem = tuple[str, str]  # (dependency, what went wrong, with addresses: admins only)


class HealthCheck:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        gateway: httpx.AsyncClient,
        *,
        store_name: str,
        embedding_url: str,
        gateway_url: str,
        timeout: float,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.gateway = gateway
        self.store_name = store_name
        self.embedding_url = embedding_url
        self.gateway_url = gateway_url
        self.timeout = timeout

    async def _qdrant(self) -> Problem | None:
        try:
            await asyncio.wait_for(to_thread.run_sync(self.store.ping), self.timeout)
        except (StoreError, TimeoutError) as exc:
            return "qdrant", f"{self.store_name}: {exc or 'timed out'}"
        return None

    async def _embedding(self) -> Problem | None:
        try:
            await self.embedder.ping(self.timeout)
        except EmbeddingError as exc:
            return "embedding", f"{self.embedding_url}: {exc}"
        return None

    async def _gateway(self) -> Problem | None:
        try:
            response = await self.gateway.get("/health", timeout=self.timeout)
        except httpx.HTTPError as exc:
            return "gateway", f"{self.gateway_url}: unreachable ({type(exc).__name__})"
        if response.status_code != 200:
            return "gateway", f"{self.gateway_url}: HTTP {response.status_code}"
        return None

    async def problems(self) -> list[Problem]:
        found = await asyncio.gather(self._qdrant(), self._embedding(), self._gateway())
        return [p for p in found if p is not None]


def health_router(check: HealthCheck, keyring: Keyring) -> APIRouter:
    router = APIRouter()

    @router.get("/health", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        problems = await check.problems()
        if not problems:
            return JSONResponse({"status": "ok"})
        for name, detail in problems:
            log.warning("not ready: %s is unavailable (%s)", name, detail)
        body: dict[str, object] = {
            "status": "unavailable",
            "unavailable": [name for name, _ in problems],
        }
        if _is_admin(request, keyring):
            body["details"] = dict(problems)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    return router


def _is_admin(request: Request, keyring: Keyring) -> bool:
    """Readiness is open to probes; its details only to an admin key (anyone when open)."""
    if keyring.open:
        return True
    token = bearer_token(request.scope)
    caller = keyring.caller(token) if token is not None else None
    return caller is not None and caller.access >= Access.ADMIN
