"""Micro-batching: concurrent requests share model calls and each gets its own vectors."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from embedding.app import create_app
from embedding.batching import Vectors, plan_chunks
from embedding.encoders.base import EncoderError
from embedding.runtime import Runtime
from embedding.settings import EmbeddingSettings
from embedding.tokenizer import Features
from tests.embedding.conftest import ClientFactory


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


async def test_concurrent_requests_are_merged_and_answered_separately(
    int8_runtime: Runtime, passages: tuple[str, ...]
) -> None:
    texts = list(passages[:16])
    reference = int8_runtime.embed_texts(texts)
    app = create_app(EmbeddingSettings(batch_wait_ms=50), runtime=int8_runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(
            *(client.post("/v1/embeddings", json={"input": text}) for text in texts)
        )
        metrics = (await client.get("/metrics")).text
    vectors = np.array([r.json()["data"][0]["embedding"] for r in responses], dtype=np.float32)
    similarity = vectors @ reference.T
    # every answer is its own text's vector, not a neighbour's from the shared batch
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    assert float(np.diag(similarity).min()) > 0.98  # int8: batch composition moves vectors a little
    batches = _metric(metrics, "p2_embedding_batch_size_count")
    assert _metric(metrics, "p2_embedding_batch_size_sum") == len(texts)
    assert batches < len(texts)  # requests shared model calls
    await app.state.service.aclose()


def test_full_queue_answers_503_at_once(client_for: ClientFactory, int8_runtime: Runtime) -> None:
    with client_for(int8_runtime, max_queue=2) as client:
        response = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "queue_full"
        assert client.post("/v1/embeddings", json={"input": ["a", "b"]}).status_code == 200


class _FailsOnce:
    """The real encoder, except that its first call fails."""

    def __init__(self, runtime: Runtime) -> None:
        self.inner = runtime.encoder
        self.failed = False

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, features: Features) -> Vectors:
        if not self.failed:
            self.failed = True
            raise EncoderError("simulated backend failure")
        return self.inner.embed(features)


def test_a_failing_batch_is_a_500_and_the_next_one_works(
    client_for: ClientFactory, int8_runtime: Runtime
) -> None:
    flaky = Runtime(
        int8_runtime.model,
        int8_runtime.tokenizer,
        (_FailsOnce(int8_runtime),),
        int8_runtime.max_batch_tokens,
    )
    with client_for(flaky) as client:
        failed = client.post("/v1/embeddings", json={"input": "x"})
        assert failed.status_code == 500
        assert "simulated backend failure" in failed.json()["error"]["message"]
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200


def test_requests_wait_with_503_until_the_model_is_loaded(
    client_for: ClientFactory, tmp_path: object
) -> None:
    app = create_app(EmbeddingSettings(model="/nonexistent/model"))
    with TestClient(app) as client:
        for _ in range(600):  # the loader thread fails fast on a missing directory
            health = client.get("/health")
            if health.json().get("error", {}).get("code") == "failed":
                break
        assert health.status_code == 503
        assert "/nonexistent/model" in health.json()["error"]["message"]
        response = client.post("/v1/embeddings", json={"input": "x"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_loading"


@pytest.mark.parametrize(("budget", "padding"), [(1, 0.0), (64, 0.5), (1000, 0.0), (1000, 9.0)])
def test_chunks_cover_every_input_once_within_budget_and_padding(
    budget: int, padding: float
) -> None:
    lengths = [5, 300, 12, 12, 40, 7, 256, 3, 90, 41]
    chunks = plan_chunks(lengths, budget, padding)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        padded = len(chunk) * max(lengths[i] for i in chunk)
        real = sum(lengths[i] for i in chunk)
        assert len(chunk) == 1 or (padded <= budget and padded <= real * (1 + padding))
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(flat)
    if padding == 0.0 and budget == 1000:
        assert [lengths[i] for i in chunks[3]] == [12, 12]  # equal lengths still share a call
