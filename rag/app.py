"""App factory of the RAG service: store, embedding client, gateway client, routes."""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from p2.core.app import service_app
from p2.core.errors import error_response
from p2.core.settings import CoreSettings
from rag.answering import Answerer
from rag.embedder import Embedder
from rag.engine import Engine
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
from rag.store.factory import open_store

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
    """The RAG app; ``store`` overrides the one ``settings`` would open (tests).

    ``/health`` is RAG's own (``HealthCheck``): ready means its dependencies answer.
    """
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
    engine = Engine(store, embedder, Bm25Encoder(), settings, metrics)
    retriever = Retriever(engine)
    health = HealthCheck(
        store,
        embedder,
        gateway_client,
        embedding_url=settings.embedding_url,
        gateway_url=settings.gateway_url,
        timeout=settings.health_timeout,
    )
    router = build_router(
        Indexer(engine),
        retriever,
        Answerer(gateway_client, retriever, settings),
        health,
        settings.max_document_bytes,
    )

    async def close() -> None:
        await embed_client.aclose()
        await gateway_client.aclose()
        store.close()

    app = service_app(
        "P2 RAG",
        routers=[router],
        registry=metrics.registry,
        requests=metrics.requests,
        close=close,
    )
    app.add_exception_handler(RagError, _rag_error)
    app.state.store = store
    return app
