"""Backends agree with the sentence-transformers reference on real passages."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from embedding.artifacts import FP32_NAME, cache_dir_for, prepare
from embedding.encoders.base import Vectors
from embedding.model import default_model_dir
from embedding.quantize import MIN_MEAN_COSINE, Agreement, agreement, cosines
from embedding.runtime import Runtime
from embedding.settings import Backend
from tests.embedding.conftest import ClientFactory


def _reference(texts: list[str]) -> Vectors:
    """Plain sentence-transformers, default settings: the vectors users expect."""
    model = SentenceTransformer(str(default_model_dir()), device="cpu")
    return np.asarray(model.encode(texts), dtype=np.float32)


def _served(client: TestClient, texts: list[str]) -> Vectors:
    data = client.post("/v1/embeddings", json={"input": texts}).json()["data"]
    return np.array([item["embedding"] for item in data], dtype=np.float32)


def test_every_backend_matches_sentence_transformers(
    client_for: ClientFactory,
    passages: tuple[str, ...],
    int8_runtime: Runtime,
    fp32_runtime: Runtime,
    torch_runtime: Runtime,
) -> None:
    texts = list(passages)
    reference = _reference(texts)
    results = {}
    for runtime in (torch_runtime, fp32_runtime, int8_runtime):
        with client_for(runtime) as client:
            results[runtime.backend] = cosines(_served(client, texts), reference)
    assert set(results) == set(Backend)
    assert results[Backend.TORCH].min() > 0.9999
    assert results[Backend.ONNX].min() > 0.9999
    assert results[Backend.ONNX_INT8].mean() >= MIN_MEAN_COSINE  # 0.99
    assert results[Backend.ONNX_INT8].min() >= 0.95


def test_plain_dynamic_quantization_is_refused(
    fp32_runtime: Runtime, embedding_cache: Path, passages: tuple[str, ...], tmp_path: Path
) -> None:
    """One scale per tensor on every op type loses too much; the gate must say no."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped, unused-ignore]
        quantize_dynamic,
    )

    from embedding.encoders.onnx_encoder import OnnxEncoder

    naive = tmp_path / "naive.onnx"
    quantize_dynamic(str(cache_dir_for(fp32_runtime.model, embedding_cache) / FP32_NAME), naive)
    candidate = Runtime(
        fp32_runtime.model,
        fp32_runtime.tokenizer,
        (OnnxEncoder(naive, 2, Backend.ONNX_INT8),),
        fp32_runtime.max_batch_tokens,
    )
    result = agreement(fp32_runtime.embed_texts, candidate.embed_texts, list(passages))
    assert result.mean < MIN_MEAN_COSINE and not result.accepted


def test_a_refused_int8_model_falls_back_to_fp32_and_is_not_retried(
    int8_runtime: Runtime, embedding_cache: Path, tmp_path: Path
) -> None:
    model = int8_runtime.model
    folder = cache_dir_for(model, tmp_path)
    folder.mkdir(parents=True)
    shutil.copy(cache_dir_for(model, embedding_cache) / FP32_NAME, folder / FP32_NAME)
    calls: list[Path] = []

    def refuse(fp32: Path, int8: Path) -> Agreement:
        calls.append(int8)
        return Agreement(mean=0.93, min=0.81, samples=64)

    first = prepare(model, tmp_path, int8=True, check=refuse)
    second = prepare(model, tmp_path, int8=True, check=refuse)
    assert first.int8 is None and second.int8 is None
    assert second.agreement == Agreement(0.93, 0.81, 64)
    assert len(calls) == 1  # the verdict is cached with the export
    assert first.fp32 == folder / FP32_NAME
