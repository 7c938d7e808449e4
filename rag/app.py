"""App factory of the RAG service: store, embedding client, gateway client, routes, keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from p2.core.app import service_app
from p2.core.errors import error_response
from p2.core.keys import Keyring, KeySettings
from p2.core.limits import BodyLimit
from p2.core.settings import CoreSettings
from rag.access import POLICY
from rag.answering import Answerer
from rag.embedder import Embedder
from rag.engine import Engine
from rag.errors import (
    CollectionNotFound,
    EmbeddingError,
    EmbeddingUnavailable,
    NameTaken,
    RagError,
    StoreRejected,
    StoreUnavailable,
)
from rag.extractor import Extractor
from rag.health import HealthCheck, health_router
from rag.indexing import Indexer
from rag.metrics import RagMetrics
from rag.retrieval import Retriever
from rag.retry import RetryPolicy
from rag.routes import build_router
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import VectorStore
from rag.store.factory import describe, open_store
from rag.uploads import Uploads

log = logging.getLogger("p2.rag")


def _rag_error(_: Request, exc: Exception) -> JSONResponse:
    """Dependency failures as OpenAI-format errors that say which dependency failed and
    nothing about where it is or how (that goes to the log)."""
    assert isinstance(exc, RagError)
    if isinstance(exc, CollectionNotFound):
        return error_response(404, str(exc), code="collection_not_found", param="collection")
    if isinstance(exc, NameTaken):
        return error_response(409, f"{exc}.", code="name_taken", param="collection")
    log.warning("%s: %s", type(exc).__name__, exc)
    if isinstance(exc, StoreRejected):
        return error_response(400, "The vector store refused the request.", code="qdrant_refused")
    if isinstance(exc, StoreUnavailable):
        return error_response(
            503, "The vector store is unavailable; try again later.", code="qdrant_unavailable"
        )
    if isinstance(exc, EmbeddingUnavailable):
        return error_response(
            503,
            "The embedding service is unavailable; try again later.",
            code="embedding_unavailable",
        )
    if isinstance(exc, EmbeddingError):
        return error_response(
            502, "The embedding service failed on this request.", code="embedding_error"
        )
    return error_response(503, "The vector store failed.", code="qdrant_error")


def _client(url: str, timeout: float, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return httpx.AsyncClient(
        base_url=url, timeout=httpx.Timeout(timeout, connect=5.0), headers=headers
    )


def create_app(
    settings: RagSettings | None = None,
    core: CoreSettings | None = None,
    *,
    store: VectorStore | None = None,
    keyring: Keyring | None = None,
) -> FastAPI:
    """The RAG app; ``store`` overrides the one ``settings`` would open, ``keyring`` the keys
    of ``P2_API_KEYS`` and its kin (tests).

    ``/health`` is liveness, ``/health/ready`` readiness (``rag.health``); at start
    every collection's interrupted writes are repaired in the background.
    """
    settings = settings or RagSettings()
    core = core or CoreSettings()
    keyring = keyring if keyring is not None else KeySettings().keyring()
    metrics = RagMetrics()
    store = store or open_store(settings, core.home, metrics)
    cpu = CapacityLimiter(settings.workers)
    embed_client = _client(settings.embedding_url, settings.embed_timeout, settings.service_key)
    gateway_client = _client(settings.gateway_url, settings.llm_timeout, None)
    embed_policy = RetryPolicy(
        target="embedding",
        max_retries=settings.embed_max_retries,
        min_wait=settings.embed_retry_min_wait,
        max_wait=settings.embed_retry_max_wait,
        counter=metrics.retries,
    )
    embedder = Embedder(
        embed_client,
        model=settings.embedding_model,
        batch=settings.embed_batch,
        policy=embed_policy,
        metrics=metrics,
        cpu=cpu,
    )
    engine = Engine(store, embedder, Bm25Encoder(), settings, metrics)
    retriever = Retriever(engine)
    indexer = Indexer(engine, cpu)
    extractor = Extractor(
        workers=settings.workers, timeout=settings.extract_timeout, max_pages=settings.max_pdf_pages
    )
    health = HealthCheck(
        store,
        embedder,
        gateway_client,
        store_name=describe(settings, core.home),
        embedding_url=settings.embedding_url,
        gateway_url=settings.gateway_url,
        timeout=settings.health_timeout,
    )
    router = build_router(
        indexer,
        retriever,
        Answerer(gateway_client, retriever, settings),
        Uploads(settings, extractor, cpu),
    )

    async def close() -> None:
        extractor.close()
        await embed_client.aclose()
        await gateway_client.aclose()
        store.close()

    app = service_app(
        "P2 RAG",
        routers=[health_router(health, keyring), router],
        registry=metrics.registry,
        requests=metrics.requests,
        close=close,
        keyring=keyring,
        policy=POLICY,
    )
    app.add_exception_handler(RagError, _rag_error)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, setting="RAG_MAX_BODY_BYTES")
    _repair_at_start(app, indexer)
    app.state.store = store
    return app


def _repair_at_start(app: FastAPI, indexer: Indexer) -> None:
    """Run ``indexer.recover_all`` in the background once the app has started."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with started(application) as state:
            repair = asyncio.create_task(indexer.recover_all(), name="rag-repair")
            app.state.repair = repair
            try:
                yield state
            finally:
                repair.cancel()

    app.router.lifespan_context = lifespan
