"""Load a model for serving: resolve it, prepare the chosen backend, pair it with its tokenizer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedding.encoders.base import Encoder, Vectors
from embedding.model import ModelInfo, resolve_model
from embedding.padding import embed_all
from embedding.quantize import Agreement, agreement
from embedding.samples import stdlib_passages
from embedding.settings import Backend, EmbeddingSettings
from embedding.tokenizer import TextTokenizer, Tokenized
from p2.core.settings import use_local_models_only

log = logging.getLogger("p2.embedding")

CHECK_PASSAGES = 64


@dataclass
class Runtime:
    """Everything needed to turn texts into vectors; one encoder per batch worker."""

    model: ModelInfo
    tokenizer: TextTokenizer
    encoders: tuple[Encoder, ...]
    max_batch_tokens: int
    max_padding: float = 0.0
    agreement: Agreement | None = None

    @property
    def encoder(self) -> Encoder:
        return self.encoders[0]

    @property
    def backend(self) -> Backend:
        return self.encoder.name

    def embed_tokens(self, items: Sequence[Tokenized], worker: int = 0) -> Vectors:
        """Vectors of ``items`` on the encoder of ``worker`` (one thread per worker)."""
        return embed_all(
            items,
            pad=self.tokenizer.pad,
            embed=self.encoders[worker].embed,
            max_batch_tokens=self.max_batch_tokens,
            max_padding=self.max_padding,
        )

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        """Synchronous helper (checks, benchmarks): tokenize and embed."""
        return self.embed_tokens(self.tokenizer.encode(texts))


def token_limit(settings: EmbeddingSettings, model: ModelInfo) -> int:
    if settings.max_tokens == 0:
        return model.max_seq_length
    if settings.max_tokens > model.max_seq_length:
        log.warning(
            "EMBEDDING_MAX_TOKENS=%d exceeds the model's limit; using %d",
            settings.max_tokens,
            model.max_seq_length,
        )
        return model.max_seq_length
    return settings.max_tokens


def load_runtime(settings: EmbeddingSettings, cache_root: Path) -> Runtime:
    """Build the runtime the settings ask for; slow on the first ONNX start (export).

    Hugging Face libraries are kept offline first (they are imported from here on).
    """
    use_local_models_only()
    model = resolve_model(settings.model, settings.model_name, settings.model_alias)
    tokenizer = TextTokenizer(model.path, token_limit(settings, model))
    if settings.backend is Backend.TORCH:
        from embedding.encoders.torch_encoder import TorchEncoder

        # torch parallelizes inside each forward pass: one worker with every thread
        encoder = TorchEncoder(model.path, settings.threads)
        return Runtime(
            model, tokenizer, (encoder,), settings.max_batch_tokens, settings.max_padding
        )
    return _load_onnx(settings, model, tokenizer, cache_root)


def _load_onnx(
    settings: EmbeddingSettings, model: ModelInfo, tokenizer: TextTokenizer, cache_root: Path
) -> Runtime:
    from embedding.artifacts import prepare
    from embedding.encoders.onnx_encoder import OnnxEncoder

    want_int8 = settings.backend is Backend.ONNX_INT8

    def check(fp32: Path, int8: Path) -> Agreement:
        reference = Runtime(
            model,
            tokenizer,
            (OnnxEncoder(fp32, settings.threads, Backend.ONNX),),
            settings.max_batch_tokens,
        )
        candidate = Runtime(
            model,
            tokenizer,
            (OnnxEncoder(int8, settings.threads, Backend.ONNX_INT8),),
            settings.max_batch_tokens,
        )
        texts = stdlib_passages()[:CHECK_PASSAGES]
        return agreement(reference.embed_texts, candidate.embed_texts, texts)

    artifacts = prepare(model, cache_root, int8=want_int8, check=check)
    if want_int8 and artifacts.int8 is None and artifacts.agreement is not None:
        log.warning(
            "int8 model refused (cosine to fp32: mean %.4f, min %.4f); serving fp32 ONNX",
            artifacts.agreement.mean,
            artifacts.agreement.min,
        )
    path, name = (
        (artifacts.int8, Backend.ONNX_INT8) if artifacts.int8 else (artifacts.fp32, Backend.ONNX)
    )
    workers = settings.workers or settings.threads
    threads = max(1, settings.threads // workers)
    encoders = tuple(OnnxEncoder(path, threads, name) for _ in range(workers))
    return Runtime(
        model,
        tokenizer,
        encoders,
        settings.max_batch_tokens,
        settings.max_padding,
        artifacts.agreement,
    )
