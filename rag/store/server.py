"""A Qdrant server (``QDRANT_URL``) through qdrant-client's REST API.

The same adapter also runs on qdrant-client's in-process local mode
(``QdrantClient(location=":memory:")``), which is how it is tested here: no
Qdrant server binary is installable on this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag.errors import CollectionNotFound, StoreError, StoreRejected, StoreUnavailable
from rag.store.base import DENSE, SPARSE, Hit, Record, SearchMode, SearchRequest, StoredPoint, Where
from rag.store.base import Sparse as SparseValue

T = TypeVar("T")
_INDEXED_FIELDS = ("kind", "doc_id")


def classify(exc: BaseException, name: str = "") -> StoreError:
    """Transient (connection, timeout, 5xx, 429) or a fast failure (4xx, local-mode errors)."""
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        detail = f"Qdrant answered HTTP {status}: {exc.content[:300]!r}"
        if status == 429 or status >= 500:
            return StoreUnavailable(detail)
        if status == 404:
            return CollectionNotFound(f"collection '{name}' does not exist")
        return StoreRejected(detail)
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | TimeoutError):
        return StoreUnavailable(f"Qdrant unreachable: {exc!r}")
    if isinstance(exc, ValueError) and "not found" in str(exc):
        return CollectionNotFound(f"collection '{name}' does not exist")
    return StoreRejected(str(exc))


def _guard(name: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (UnexpectedResponse, ResponseHandlingException, httpx.TransportError) as exc:
        raise classify(exc, name) from exc
    except (TimeoutError, ValueError) as exc:
        raise classify(exc, name) from exc


def _filter(where: Where | None) -> qm.Filter | None:
    if where is None or not (where.must or where.must_not):
        return None
    must: list[Any] = [
        qm.FieldCondition(key=k, match=qm.MatchValue(value=v)) for k, v in where.must
    ]
    must_not: list[Any] = [
        qm.FieldCondition(key=k, match=qm.MatchValue(value=v)) for k, v in where.must_not
    ]
    return qm.Filter(must=must or None, must_not=must_not or None)


def _sparse(value: SparseValue | None) -> qm.SparseVector:
    if value is None:
        raise StoreRejected("a sparse search needs a sparse vector")
    return qm.SparseVector(indices=value.indices, values=value.values)


def _dense(request: SearchRequest) -> list[float]:
    if request.dense is None:
        raise StoreRejected("a dense search needs a dense vector")
    return request.dense


def _point(point: StoredPoint) -> qm.PointStruct:
    vector: dict[str, Any] = {}
    if point.dense is not None:
        vector[DENSE] = point.dense
    if point.sparse is not None:
        vector[SPARSE] = qm.SparseVector(indices=point.sparse.indices, values=point.sparse.values)
    return qm.PointStruct(id=point.id, vector=vector, payload=point.payload)


class ServerStore:
    """Collections on a Qdrant server, or on a qdrant-client in-process instance."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, url: str, api_key: str | None, timeout: float) -> ServerStore:
        client = QdrantClient(
            url=url, api_key=api_key, timeout=max(1, round(timeout)), check_compatibility=False
        )
        return cls(client)

    def ping(self) -> None:
        _guard("", self.client.get_collections)

    def list_collections(self) -> list[str]:
        answer = _guard("", self.client.get_collections)
        return sorted(c.name for c in answer.collections)

    def collection_exists(self, name: str) -> bool:
        return bool(_guard(name, lambda: self.client.collection_exists(name)))

    def ensure_collection(self, name: str, dim: int) -> None:
        if self.collection_exists(name):
            return
        try:
            self.client.create_collection(
                name,
                vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:  # created meanwhile by a retry or a peer
                raise classify(exc, name) from exc
        except (ResponseHandlingException, httpx.TransportError, ValueError) as exc:
            raise classify(exc, name) from exc
        for field in _INDEXED_FIELDS:
            index = partial(
                self.client.create_payload_index, name, field, qm.PayloadSchemaType.KEYWORD
            )
            _guard(name, index)

    def drop_collection(self, name: str) -> bool:
        if not self.collection_exists(name):
            return False
        return bool(_guard(name, lambda: self.client.delete_collection(name)))

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if points:
            batch = [_point(p) for p in points]
            _guard(name, lambda: self.client.upsert(name, points=batch, wait=True))

    def retrieve(self, name: str, ids: Sequence[str]) -> list[Record]:
        if not ids:
            return []
        found = _guard(name, lambda: self.client.retrieve(name, ids=list(ids), with_payload=True))
        return [Record(str(r.id), dict(r.payload or {})) for r in found]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            selector = qm.PointIdsList(points=list(ids))
            _guard(name, lambda: self.client.delete(name, points_selector=selector, wait=True))

    def delete_where(self, name: str, where: Where) -> None:
        flt = _filter(where)
        if flt is None:
            raise StoreRejected("refusing to delete without a filter")
        selector = qm.FilterSelector(filter=flt)
        _guard(name, lambda: self.client.delete(name, points_selector=selector, wait=True))

    def count(self, name: str, where: Where | None) -> int:
        answer = _guard(
            name, lambda: self.client.count(name, count_filter=_filter(where), exact=True)
        )
        return int(answer.count)

    def scroll(
        self, name: str, where: Where | None, limit: int, offset: str | None
    ) -> tuple[list[Record], str | None]:
        records, after = _guard(
            name,
            lambda: self.client.scroll(
                name, scroll_filter=_filter(where), limit=limit, offset=offset, with_payload=True
            ),
        )
        found = [Record(str(r.id), dict(r.payload or {})) for r in records]
        return found, (str(after) if after is not None else None)

    def search(self, name: str, request: SearchRequest) -> list[Hit]:
        flt = _filter(request.where)
        params = qm.SearchParams(exact=request.exact)
        if request.mode is SearchMode.HYBRID:
            prefetch = [
                qm.Prefetch(
                    query=_dense(request),
                    using=DENSE,
                    limit=request.prefetch,
                    filter=flt,
                    params=params,
                ),
                qm.Prefetch(
                    query=_sparse(request.sparse), using=SPARSE, limit=request.prefetch, filter=flt
                ),
            ]
            query: Any = qm.RrfQuery(rrf=qm.Rrf(k=request.rrf_k))
            using: str | None = None
        elif request.mode is SearchMode.DENSE:
            prefetch, query, using = [], _dense(request), DENSE
        else:
            prefetch, query, using = [], _sparse(request.sparse), SPARSE
        answer = _guard(
            name,
            lambda: self.client.query_points(
                name,
                query=query,
                using=using,
                prefetch=prefetch or None,
                query_filter=None if prefetch else flt,
                search_params=None if prefetch else params,
                limit=request.limit,
                with_payload=True,
            ),
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in answer.points]

    def close(self) -> None:
        self.client.close()
