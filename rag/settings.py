"""RAG settings, read from the environment names the operators' guide uses.

``QDRANT_*`` configure the vector store and its retries, ``EMBEDDING_URL`` the
embedding service, ``RAG_*`` chunking, retrieval and answering.
"""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class PromptStyle(enum.StrEnum):
    """How answers are asked of the gateway (``RAG_PROMPT_STYLE``)."""

    CHAT = "chat"  # instructions + sources as chat messages (instruction-tuned models)
    COMPLETION = "completion"  # a plain Q/A prompt on /v1/completions (base models)


class Citations(enum.StrEnum):
    """Which citations an answer gets (``RAG_CITATIONS``)."""

    ATTRIBUTE = "attribute"  # the model's, and for each uncited sentence the source it quotes
    MODEL = "model"  # only the model's own [n]


class RagSettings(ServiceSettings):
    """Everything the RAG service needs; every field has its env name in ``docs/rag.md``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field("127.0.0.1", validation_alias=_env("RAG_HOST"))
    port: int = Field(8002, validation_alias=_env("RAG_PORT"))

    # Vector store: embedded (a directory) unless QDRANT_URL names a server.
    qdrant_url: str | None = Field(None, validation_alias=_env("QDRANT_URL"))
    qdrant_api_key: str | None = Field(None, validation_alias=_env("QDRANT_API_KEY"), repr=False)
    qdrant_path: Path | None = Field(None, validation_alias=_env("QDRANT_PATH"))
    qdrant_max_retries: int = Field(3, ge=0, validation_alias=_env("QDRANT_MAX_RETRIES"))
    qdrant_retry_min_wait: float = Field(2.0, ge=0, validation_alias=_env("QDRANT_RETRY_MIN_WAIT"))
    qdrant_retry_max_wait: float = Field(10.0, ge=0, validation_alias=_env("QDRANT_RETRY_MAX_WAIT"))
    qdrant_timeout: float = Field(30.0, gt=0, validation_alias=_env("QDRANT_TIMEOUT"))
    qdrant_exact: bool = Field(True, validation_alias=_env("QDRANT_EXACT"))

    # Embedding service (OpenAI /v1/embeddings).
    embedding_url: str = Field("http://127.0.0.1:8003", validation_alias=_env("EMBEDDING_URL"))
    embedding_model: str = Field("all-MiniLM-L6-v2", validation_alias=_env("RAG_EMBEDDING_MODEL"))
    embed_batch: int = Field(64, ge=1, validation_alias=_env("RAG_EMBED_BATCH"))
    embed_timeout: float = Field(120.0, gt=0, validation_alias=_env("RAG_EMBED_TIMEOUT"))
    embed_max_retries: int = Field(3, ge=0, validation_alias=_env("RAG_EMBED_MAX_RETRIES"))
    embed_retry_min_wait: float = Field(
        1.0, ge=0, validation_alias=_env("RAG_EMBED_RETRY_MIN_WAIT")
    )
    embed_retry_max_wait: float = Field(
        10.0, ge=0, validation_alias=_env("RAG_EMBED_RETRY_MAX_WAIT")
    )

    # Chunking, in characters.
    chunk_size: int = Field(800, ge=50, validation_alias=_env("RAG_CHUNK_SIZE"))
    chunk_overlap: int = Field(120, ge=0, validation_alias=_env("RAG_CHUNK_OVERLAP"))
    max_document_bytes: int = Field(
        20 * 1024 * 1024,
        gt=0,
        validation_alias=_env("RAG_MAX_DOCUMENT_BYTES"),
    )

    # Ingest bounds: each is enforced while the request streams in, before any work.
    max_body_bytes: int = Field(64 * 1024 * 1024, gt=0, validation_alias=_env("RAG_MAX_BODY_BYTES"))
    max_files: int = Field(256, ge=1, validation_alias=_env("RAG_MAX_FILES"))
    max_metadata_bytes: int = Field(
        16 * 1024, ge=2, validation_alias=_env("RAG_MAX_METADATA_BYTES")
    )
    extract_timeout: float = Field(30.0, gt=0, validation_alias=_env("RAG_EXTRACT_TIMEOUT"))
    max_pdf_pages: int = Field(2000, ge=1, validation_alias=_env("RAG_MAX_PDF_PAGES"))
    workers: int = Field(2, ge=1, le=64, validation_alias=_env("RAG_WORKERS"))

    # Retrieval and answers.
    top_k: int = Field(4, ge=1, le=100, validation_alias=_env("RAG_TOPK"))
    rrf_k: int = Field(60, ge=1, validation_alias=_env("RAG_RRF_K"))
    gateway_url: str = Field("http://127.0.0.1:8000", validation_alias=_env("RAG_GATEWAY_URL"))
    gateway_api_key: str | None = Field(
        None, validation_alias=_env("RAG_GATEWAY_API_KEY"), repr=False
    )
    # The key P2's services send each other (``p2 up`` and compose set it): RAG sends it
    # to the embedding service, and to the gateway unless RAG_GATEWAY_API_KEY is set.
    service_key: str | None = Field(None, validation_alias=_env("P2_SERVICE_KEY"), repr=False)
    llm_model: str = Field("chat", validation_alias=_env("RAG_LLM_MODEL"))
    llm_timeout: float = Field(120.0, gt=0, validation_alias=_env("RAG_LLM_TIMEOUT"))
    prompt_style: PromptStyle = Field(PromptStyle.CHAT, validation_alias=_env("RAG_PROMPT_STYLE"))
    citations: Citations = Field(Citations.ATTRIBUTE, validation_alias=_env("RAG_CITATIONS"))
    health_timeout: float = Field(2.0, gt=0, validation_alias=_env("RAG_HEALTH_TIMEOUT"))

    @field_validator("qdrant_url", "qdrant_api_key", "gateway_api_key", "service_key")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("RAG_CHUNK_OVERLAP must be smaller than RAG_CHUNK_SIZE")
        return self

    @property
    def gateway_key(self) -> str | None:
        """What RAG sends the gateway: ``RAG_GATEWAY_API_KEY``, else ``P2_SERVICE_KEY``."""
        return self.gateway_api_key or self.service_key

    def store_path(self, home: Path) -> Path:
        """Where the embedded store keeps its data: ``QDRANT_PATH`` or ``$P2_HOME/qdrant``."""
        return (self.qdrant_path or home / "qdrant").expanduser()
