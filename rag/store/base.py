"""The store interface the RAG service is written against, and its value types.

Two adapters implement it (Qdrant Edge, qdrant-client); the service never
touches either library directly. Calls are synchronous: the async layer runs
them in worker threads.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DENSE = "dense"
SPARSE = "bm25"

Scalar = str | int


class SearchMode(enum.StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class StoredPoint:
    """A point to write; a point with neither vector is a payload-only record."""

    id: str
    payload: dict[str, Any]
    dense: list[float] | None = None
    sparse: Sparse | None = None


@dataclass(frozen=True)
class Record:
    id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Where:
    """A conjunction of payload equalities, and of inequalities (``must_not``)."""

    must: tuple[tuple[str, Scalar], ...] = ()
    must_not: tuple[tuple[str, Scalar], ...] = ()


@dataclass(frozen=True)
class SearchRequest:
    mode: SearchMode
    limit: int
    dense: list[float] | None = None
    sparse: Sparse | None = None
    where: Where | None = None
    prefetch: int = 40
    rrf_k: int = 60
    exact: bool = True


class VectorStore(Protocol):
    """One Qdrant deployment holding many collections (named dense + BM25 sparse vectors)."""

    def ping(self) -> None: ...

    def list_collections(self) -> list[str]: ...

    def collection_exists(self, name: str) -> bool: ...

    def ensure_collection(self, name: str, dim: int) -> None: ...

    def drop_collection(self, name: str) -> bool: ...

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None: ...

    def retrieve(self, name: str, ids: Sequence[str]) -> list[Record]: ...

    def delete(self, name: str, ids: Sequence[str]) -> None: ...

    def delete_where(self, name: str, where: Where) -> None: ...

    def count(self, name: str, where: Where | None) -> int: ...

    def scroll(
        self, name: str, where: Where | None, limit: int, offset: str | None
    ) -> tuple[list[Record], str | None]: ...

    def search(self, name: str, request: SearchRequest) -> list[Hit]: ...

    def close(self) -> None: ...
