"""Client of the embedding service (OpenAI ``POST /v1/embeddings``), batched and retried.

Responses are parsed in a worker thread (a batch is tens of thousands of
floats), at most ``RAG_WORKERS`` at once. Error messages carry details for the
log; the client is told only which dependency failed (``rag.app``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
from anyio import CapacityLimiter, to_thread

from rag.errors import EmbeddingError, EmbeddingUnavailable
from rag.metrics import RagMetrics
from rag.retry import RetryPolicy


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


class Embedder:
    """Turns texts into vectors through the embedding service."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str,
        batch: int,
        policy: RetryPolicy,
        metrics: RagMetrics,
        cpu: CapacityLimiter,
    ) -> None:
        self.client = client
        self.model = model
        self.batch = batch
        self.policy = policy
        self.metrics = metrics
        self.cpu = cpu

    async def _once(self, texts: Sequence[str], model: str) -> list[list[float]]:
        started = time.perf_counter()
        try:
            response = await self.client.post(
                "/v1/embeddings", json={"model": model, "input": list(texts)}
            )
        except httpx.TransportError as exc:
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc
        finally:
            self.metrics.embed_seconds.observe(time.perf_counter() - started)
        if response.status_code == 429 or response.status_code >= 500:
            raise EmbeddingUnavailable(
                f"embedding service answered HTTP {response.status_code}: {_message(response)}"
            )
        if response.status_code != 200:
            raise EmbeddingError(
                f"embedding service refused the input (HTTP {response.status_code}): "
                f"{_message(response)}"
            )
        return await to_thread.run_sync(_vectors, response, len(texts), limiter=self.cpu)

    async def embed(
        self, texts: Sequence[str], operation: str = "embed", model: str | None = None
    ) -> list[list[float]]:
        """Vectors for ``texts`` in order by ``model`` (default: ``RAG_EMBEDDING_MODEL``),
        ``batch`` texts per call, each call retried."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            part = texts[start : start + self.batch]
            async for attempt in self.policy.asynchronous(operation):
                with attempt:
                    result = await self._once(part, model or self.model)
            vectors.extend(result)
        return vectors

    async def ping(self, wait: float) -> None:
        try:
            response = await self.client.get("/health", timeout=wait)
        except httpx.TransportError as exc:
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise EmbeddingUnavailable(
                f"embedding service not ready (HTTP {response.status_code}): {_message(response)}"
            )


def _vectors(response: httpx.Response, expected: int) -> list[list[float]]:
    try:
        body: Any = response.json()
        items = sorted(body["data"], key=lambda item: int(item["index"]))
        vectors = [[float(x) for x in item["embedding"]] for item in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingError(f"embedding service answered an unexpected body: {exc!r}") from exc
    if len(vectors) != expected:
        raise EmbeddingError(f"embedding service returned {len(vectors)} vectors for {expected}")
    return vectors
