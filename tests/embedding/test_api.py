"""The OpenAI contract of ``/v1/embeddings``, ``/v1/models``, ``/health`` and ``/metrics``."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient

from embedding.runtime import Runtime, load_runtime
from embedding.settings import EmbeddingSettings
from testkit.openai_errors import assert_openai_error
from tests.embedding.conftest import ClientFactory

MODEL = "all-MiniLM-L6-v2"


def _vector(item: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.asarray(item["embedding"], dtype=np.float32)


def test_single_string_has_openai_shape(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"model": MODEL, "input": "The cat sat."})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == MODEL
    (item,) = body["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    assert len(item["embedding"]) == 384
    assert np.linalg.norm(_vector(item)) == pytest.approx(1.0, abs=1e-3)
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == 6  # [CLS] the cat sat . [SEP]


def test_list_keeps_order_and_matches_single_requests(
    client: TestClient, passages: tuple[str, ...]
) -> None:
    texts = list(passages[:5])
    together = client.post("/v1/embeddings", json={"model": MODEL, "input": texts}).json()
    assert [item["index"] for item in together["data"]] == list(range(5))
    for text, item in zip(texts, together["data"], strict=True):
        alone = client.post("/v1/embeddings", json={"model": MODEL, "input": text}).json()
        # int8 results shift slightly with batch composition: compare with a tolerance
        assert float(_vector(item) @ _vector(alone["data"][0])) > 0.98
        assert together["usage"]["prompt_tokens"] > alone["usage"]["prompt_tokens"]


def test_model_may_be_omitted_or_given_by_alias(client: TestClient) -> None:
    alias = "sentence-transformers/all-MiniLM-L6-v2"
    assert client.post("/v1/embeddings", json={"input": "hi"}).json()["model"] == MODEL
    named = client.post("/v1/embeddings", json={"model": alias, "input": "hi"})
    assert named.status_code == 200 and named.json()["model"] == alias


def test_base64_is_little_endian_float32_of_the_same_vector(client: TestClient) -> None:
    text = "Vectors travel as base64 to save bytes."
    floats = client.post("/v1/embeddings", json={"input": text}).json()
    encoded = client.post(
        "/v1/embeddings", json={"input": text, "encoding_format": "base64"}
    ).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = np.frombuffer(raw, dtype="<f4")
    assert decoded.shape == (384,)
    np.testing.assert_allclose(decoded, _vector(floats["data"][0]), atol=1e-6)


def test_dimensions_equal_to_the_model_size_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": "x", "dimensions": 384})
    assert response.status_code == 200


def test_official_openai_sdk(client: TestClient) -> None:
    sdk = openai.OpenAI(api_key="unused", base_url="http://testserver/v1", http_client=client)
    result = sdk.embeddings.create(model=MODEL, input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 384
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    models = sdk.models.list()
    assert MODEL in [m.id for m in models.data]


def test_models_list_and_lookup(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    ids = [m["id"] for m in listed["data"]]
    assert ids[0] == MODEL and all(m["object"] == "model" for m in listed["data"])
    assert client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert client.get("/v1/models/sentence-transformers/all-MiniLM-L6-v2").status_code == 200
    assert_openai_error(client.get("/v1/models/nope"), 404, code="model_not_found")


def test_unknown_model_is_404_in_openai_format(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    error = assert_openai_error(
        response, 404, code="model_not_found", param="model", error_type="not_found_error"
    )
    assert "text-embedding-3-small" in error["message"] and MODEL in error["message"]


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/v1/embeddings", json={"input": ["one", "two"]})
    client.post("/v1/embeddings", json={"input": ""})
    text = client.get("/metrics").text
    assert 'p2_embedding_info{backend="onnx-int8",model="all-MiniLM-L6-v2"} 1.0' in text
    assert 'p2_embedding_requests_total{route="/v1/embeddings",status="200"} 1.0' in text
    assert 'p2_embedding_requests_total{route="/v1/embeddings",status="400"} 1.0' in text
    assert "p2_embedding_inputs_total 2.0" in text
    assert "p2_embedding_tokens_total" in text
    assert "p2_embedding_rejected_requests_total 0.0" in text
    assert "p2_embedding_batch_inputs_count" in text and "p2_embedding_batch_seconds_count" in text
    assert "p2_embedding_queued_inputs 0.0" in text


def test_long_input_is_truncated_by_default(client: TestClient, int8_runtime: Runtime) -> None:
    long_text = "word " * 1000
    body = client.post("/v1/embeddings", json={"input": long_text}).json()
    assert body["usage"]["prompt_tokens"] == int8_runtime.model.max_seq_length == 256
    assert "p2_embedding_truncated_inputs_total 1.0" in client.get("/metrics").text


def test_token_limit_is_configurable(
    client_for: ClientFactory, int8_runtime: Runtime, embedding_cache: Path
) -> None:
    settings = EmbeddingSettings(max_tokens=16)
    with client_for(load_runtime(settings, embedding_cache), max_tokens=16) as client:
        body = client.post("/v1/embeddings", json={"input": "word " * 100}).json()
    assert body["usage"]["prompt_tokens"] == 16


def test_long_input_is_refused_when_truncation_is_off(
    client_for: ClientFactory, int8_runtime: Runtime
) -> None:
    with client_for(int8_runtime, truncate=False) as client:
        fine = client.post("/v1/embeddings", json={"input": ["short", "also short"]})
        refused = client.post("/v1/embeddings", json={"input": ["short", "word " * 1000]})
    assert fine.status_code == 200
    error = assert_openai_error(refused, 400, code="context_length_exceeded", param="input")
    assert "input[1]" in error["message"] and "256" in error["message"]
