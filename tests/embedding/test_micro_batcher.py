"""Micro-batching: concurrent requests share model calls and each gets its own vectors."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np

from embedding.app import create_app
from embedding.encoders.base import EncoderError, Vectors
from embedding.runtime import Runtime
from embedding.settings import Backend, EmbeddingSettings
from embedding.tokenizer import Features
from testkit.openai_errors import assert_openai_error
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
    batches = _metric(metrics, "p2_embedding_batch_inputs_count")
    assert _metric(metrics, "p2_embedding_batch_inputs_sum") == len(texts)
    assert batches < len(texts)  # requests shared model calls
    await app.state.service.aclose()


def test_full_queue_answers_503_at_once(client_for: ClientFactory, int8_runtime: Runtime) -> None:
    with client_for(int8_runtime, max_queue=2) as client:
        response = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]})
        assert_openai_error(response, 503, code="queue_full", contains="embedding queue")
        assert response.headers["retry-after"] == "1"
        assert "p2_embedding_rejected_requests_total 1.0" in client.get("/metrics").text
        assert client.post("/v1/embeddings", json={"input": ["a", "b"]}).status_code == 200


class _FailsOnce:
    """The real encoder, except that its first call fails."""

    def __init__(self, runtime: Runtime) -> None:
        self.inner = runtime.encoder
        self.failed = False

    @property
    def name(self) -> Backend:
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
        assert_openai_error(failed, 500, contains="simulated backend failure")
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 200
