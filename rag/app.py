"""App factory of the RAG service: store, embedding client, gateway client, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from p2.core.errors import error_response, install_error_handlers
from p2.core.metrics import CountRequests, metrics_router
from p2.core.settings import CoreSettings
from rag.answering import Answerer
from rag.embedder import Embedder
from rag.errors import (
    CollectionNotFound,
    EmbeddingError,
    EmbeddingUnavailable,
    RagError,
    StoreRejected,
    StoreUnavailable,
)
from rag.health import HealthCheck
from rag.indexing import Indexer
from rag.metrics import RagMetrics
from rag.retrieval import Retriever
from rag.retry import RetryPolicy
from rag.routes import build_router
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import VectorStore
from rag.store.factory import describe, open_store

log = logging.getLogger("p2.rag")


def _rag_error(_: Request, exc: Exception) -> JSONResponse:
    """Dependency failures as OpenAI-format errors: nothing leaks as a 500 traceback."""
    assert isinstance(exc, RagError)
    if isinstance(exc, CollectionNotFound):
        return error_response(404, str(exc), code="collection_not_found", param="collection")
    if isinstance(exc, StoreRejected):
        return error_response(400, f"The vector store refused the request: {exc}")
    if isinstance(exc, StoreUnavailable):
        return error_response(
            503, f"The vector store is unavailable: {exc}", code="qdrant_unavailable"
        )
    if isinstance(exc, EmbeddingUnavailable):
        return error_response(
            503, f"The embedding service is unavailable: {exc}", code="embedding_unavailable"
        )
    if isinstance(exc, EmbeddingError):
        return error_response(502, str(exc), error_type="api_error", code="embedding_error")
    log.error("vector store error: %s", exc)
    return error_response(503, f"The vector store failed: {exc}", code="qdrant_error")


def create_app(
    settings: RagSettings | None = None,
    core: CoreSettings | None = None,
    *,
    store: VectorStore | None = None,
) -> FastAPI:
    """The RAG app; ``store`` overrides the one ``settings`` would open (tests)."""
    settings = settings or RagSettings()
    core = core or CoreSettings()
    metrics = RagMetrics()
    store = store or open_store(settings, core.home, metrics)
    embed_client = httpx.AsyncClient(
        base_url=settings.embedding_url,
        timeout=httpx.Timeout(settings.embed_timeout, connect=5.0),
    )
    gateway_client = httpx.AsyncClient(
        base_url=settings.gateway_url,
        timeout=httpx.Timeout(settings.llm_timeout, connect=5.0),
    )
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
    )
    bm25 = Bm25Encoder()
    indexer = Indexer(store, embedder, bm25, settings, metrics)
    retriever = Retriever(store, embedder, bm25, settings, metrics)
    answerer = Answerer(gateway_client, retriever, settings)
    health = HealthCheck(
        store,
        embedder,
        gateway_client,
        embedding_url=settings.embedding_url,
        gateway_url=settings.gateway_url,
        timeout=settings.health_timeout,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("RAG store: %s", describe(settings, core.home))
        yield
        await embed_client.aclose()
        await gateway_client.aclose()
        store.close()

    app = FastAPI(title="P2 RAG", lifespan=lifespan)
    install_error_handlers(app)
    app.add_exception_handler(RagError, _rag_error)
    app.include_router(metrics_router(metrics.registry))
    app.include_router(
        build_router(indexer, retriever, answerer, health, settings.max_document_bytes)
    )
    app.add_middleware(CountRequests, counter=metrics.requests)
    app.state.store = store
    app.state.metrics = metrics
    app.state.indexer = indexer
    app.state.retriever = retriever
    return app
