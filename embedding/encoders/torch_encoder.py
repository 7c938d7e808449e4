"""The reference backend: the sentence-transformers pipeline in PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from embedding.encoders.base import EncoderError, Vectors
from embedding.settings import Backend
from embedding.tokenizer import Features


def model_inputs(model: SentenceTransformer) -> tuple[str, ...]:
    """The tensor inputs the model's tokenizer produces (``token_type_ids`` is optional)."""
    sample = model.preprocess(["probe"])
    names = ("input_ids", "attention_mask", "token_type_ids")
    return tuple(name for name in names if isinstance(sample.get(name), torch.Tensor))


class TorchEncoder:
    """Runs every module of the model (transformer, pooling, dense, normalize) on CPU."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_dir), device="cpu")
        self._model.eval()
        self._inputs = model_inputs(self._model)
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EncoderError(f"cannot tell the embedding dimension of {model_dir}")
        self._dimension = int(dimension)

    @property
    def name(self) -> Backend:
        return Backend.TORCH

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, features: Features) -> Vectors:
        batch = {name: torch.from_numpy(features[name]) for name in self._inputs}
        try:
            with torch.inference_mode():
                output = self._model(batch)["sentence_embedding"]
        except RuntimeError as exc:
            raise EncoderError(f"torch forward pass failed: {exc}") from exc
        return np.ascontiguousarray(output.float().numpy(), dtype=np.float32)
