"""The RAG API's vocabulary: request bodies (pydantic) and document outcomes.

Responses are plain JSON dicts.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rag.store.base import SearchMode


class Outcome(enum.StrEnum):
    """What a request did to one document.

    ``status`` in indexing answers (indexed, unchanged), and the ``outcome``
    label of ``p2_rag_documents_total`` (deleted too).
    """

    INDEXED = "indexed"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)  # at most RAG_MAX_METADATA_BYTES
    source: str | None = Field(default=None, max_length=1024)


class DocumentsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str
    query: str = Field(min_length=1, max_length=10_000)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode = SearchMode.HYBRID


class ChatBody(BaseModel):
    """An OpenAI chat-completions body plus the RAG fields; unknown fields pass through."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    collection: str | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    mode: SearchMode = SearchMode.HYBRID
