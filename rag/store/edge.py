"""Embedded store on Qdrant Edge: one shard directory per collection, in-process.

Edge is Qdrant's own engine as a library: a few ms per exact search at 100 k
chunks, WAL-backed (survives a hard kill), reopened in ~0.2 s. Its filter and
query classes share qdrant-client's names but are distinct, hence this adapter.
Only one process may open a shard directory; the RAG service owns it.

A collection is a directory whose name is a valid collection name and that
holds Edge's ``edge_config.json``; nothing else under the root is ever listed,
opened or deleted. Dropping renames the directory to a hidden ``.dropped-*``
name first (one atomic step: the collection is gone for readers, and a crash
cannot leave half of it), then deletes it; leftovers of an interrupted drop are
deleted when the store opens.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from rag.errors import CollectionNotFound, NameTaken, StoreError, StoreRejected
from rag.identifiers import is_collection_name
from rag.store.base import DENSE, SPARSE, Hit, Record, SearchMode, SearchRequest, StoredPoint, Where
from rag.store.base import Sparse as SparseValue

T = TypeVar("T")
log = logging.getLogger("p2.rag.store")
_CONFIG_FILE = "edge_config.json"
_DROPPED = ".dropped-"
_INDEXED_FIELDS = ("kind", "doc_id")


def _translate(exc: BaseException, name: str) -> StoreError:
    text = str(exc)
    if "does not exist" in text:
        return CollectionNotFound(f"collection '{name}' does not exist")
    if "dimension" in text.lower() or "Wrong input" in text or "Bad request" in text:
        return StoreRejected(text)
    return StoreError(text)


def _guard(name: str, call: Callable[[], T]) -> T:
    """Run one Edge call; Edge raises bare ``Exception`` for everything, so translate here."""
    try:
        return call()
    except StoreError:
        raise
    except Exception as exc:
        raise _translate(exc, name) from exc


def _filter(where: Where | None) -> qe.Filter | None:
    if where is None or not (where.must or where.must_not):
        return None
    must: list[Any] = [qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in where.must]
    must_not: list[Any] = [qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in where.must_not]
    return qe.Filter(must=must or None, must_not=must_not or None)


def _index_fields(shard: qe.EdgeShard) -> None:
    for field in _INDEXED_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))


def _point(point: StoredPoint) -> qe.Point:
    vector: dict[str, Any] = {}
    if point.dense is not None:
        vector[DENSE] = point.dense
    if point.sparse is not None:
        vector[SPARSE] = qe.SparseVector(point.sparse.indices, point.sparse.values)
    return qe.Point(point.id, vector, point.payload)


class _Shard:
    """One open shard and the lock serialising access to it."""

    def __init__(self, shard: qe.EdgeShard) -> None:
        self.shard = shard
        self.lock = threading.RLock()


class EdgeStore:
    """Collections as shard directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.RLock()
        for leftover in self.root.glob(f"{_DROPPED}*"):
            log.warning("removing %s, left by an interrupted drop", leftover.name)
            shutil.rmtree(leftover, ignore_errors=True)

    # -- collections ------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.root / name

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"store directory {self.root} is missing")

    def list_collections(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if self.collection_exists(p.name))

    def collection_exists(self, name: str) -> bool:
        """A directory of a valid name (not a link) holding Edge's configuration."""
        path = self._dir(name)
        return (
            is_collection_name(name)
            and path.is_dir()
            and not path.is_symlink()
            and (path / _CONFIG_FILE).is_file()
        )

    def ensure_collection(self, name: str, dim: int) -> None:
        with self._lock:
            if name in self._shards or self.collection_exists(name):
                return
            if self._dir(name).exists() or self._dir(name).is_symlink():
                raise NameTaken(f"'{name}' is taken by something that is not a collection")
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = _guard(name, lambda: qe.EdgeShard.create(str(self._dir(name)), config))
            _guard(name, lambda: _index_fields(shard))
            self._shards[name] = _Shard(shard)

    def drop_collection(self, name: str) -> bool:
        with self._lock:
            if not self.collection_exists(name):
                return False
            opened = self._shards.pop(name, None)
            if opened is not None:
                with opened.lock:
                    _guard(name, opened.shard.close)
            doomed = self.root / f"{_DROPPED}{name}-{uuid.uuid4().hex[:8]}"
            self._dir(name).rename(doomed)
            shutil.rmtree(doomed)
            return True

    @contextlib.contextmanager
    def _open(self, name: str) -> Iterator[qe.EdgeShard]:
        with self._lock:
            opened = self._shards.get(name)
            if opened is None:
                if not self.collection_exists(name):
                    raise CollectionNotFound(f"collection '{name}' does not exist")
                shard = _guard(name, lambda: qe.EdgeShard.load(str(self._dir(name))))
                opened = self._shards[name] = _Shard(shard)
        with opened.lock:
            yield opened.shard

    # -- points -----------------------------------------------------------

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        op = qe.UpdateOperation.upsert_points([_point(p) for p in points])
        with self._open(name) as shard:
            _guard(name, lambda: shard.update(op))

    def retrieve(self, name: str, ids: Sequence[str]) -> list[Record]:
        if not ids:
            return []
        with self._open(name) as shard:
            records = _guard(name, lambda: shard.retrieve(list(ids), True, False))
        return [Record(str(r.id), dict(r.payload or {})) for r in records]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        op = qe.UpdateOperation.delete_points(list(ids))
        with self._open(name) as shard:
            _guard(name, lambda: shard.update(op))

    def delete_where(self, name: str, where: Where) -> None:
        flt = _filter(where)
        if flt is None:
            raise StoreRejected("refusing to delete without a filter")
        op = qe.UpdateOperation.delete_points_by_filter(flt)
        with self._open(name) as shard:
            _guard(name, lambda: shard.update(op))

    def count(self, name: str, where: Where | None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(where))
        with self._open(name) as shard:
            return _guard(name, lambda: shard.count(request))

    def scroll(
        self, name: str, where: Where | None, limit: int, offset: str | None
    ) -> tuple[list[Record], str | None]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(where), with_payload=True, with_vector=False
        )
        with self._open(name) as shard:
            records, after = _guard(name, lambda: shard.scroll(request))
        found = [Record(str(r.id), dict(r.payload or {})) for r in records]
        return found, (str(after) if after is not None else None)

    def search(self, name: str, request: SearchRequest) -> list[Hit]:
        query = _query(request)
        with self._open(name) as shard:
            points = _guard(name, lambda: shard.query(query))
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def close(self) -> None:
        with self._lock:
            for name, opened in list(self._shards.items()):
                with opened.lock:
                    _guard(name, opened.shard.close)
            self._shards.clear()


def _nearest_dense(request: SearchRequest) -> qe.Query:
    if request.dense is None:
        raise StoreRejected("a dense search needs a dense vector")
    return qe.Query.Nearest(request.dense, using=DENSE)


def _nearest_sparse(sparse: SparseValue | None) -> qe.Query:
    if sparse is None:
        raise StoreRejected("a sparse search needs a sparse vector")
    return qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE)


def _query(request: SearchRequest) -> qe.QueryRequest:
    flt = _filter(request.where)
    params = qe.SearchParams(exact=request.exact)
    if request.mode is SearchMode.DENSE:
        return qe.QueryRequest(
            limit=request.limit,
            query=_nearest_dense(request),
            filter=flt,
            params=params,
            with_payload=True,
        )
    if request.mode is SearchMode.SPARSE:
        return qe.QueryRequest(
            limit=request.limit,
            query=_nearest_sparse(request.sparse),
            filter=flt,
            with_payload=True,
        )
    prefetches = [
        qe.Prefetch(
            limit=request.prefetch, query=_nearest_dense(request), filter=flt, params=params
        ),
        qe.Prefetch(limit=request.prefetch, query=_nearest_sparse(request.sparse), filter=flt),
    ]
    return qe.QueryRequest(
        limit=request.limit,
        prefetches=prefetches,
        query=qe.Fusion.Rrf(k=request.rrf_k),  # type: ignore[arg-type]  # stub omits Rrf
        with_payload=True,
    )
