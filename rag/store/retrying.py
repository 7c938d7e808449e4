"""Every store call through the retry policy: a wrapper, so adapters stay simple."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from rag.retry import RetryPolicy
from rag.store.base import Hit, Record, SearchRequest, StoredPoint, VectorStore, Where

T = TypeVar("T")


class RetryingStore:
    """A :class:`VectorStore` whose calls are retried on transient errors only."""

    def __init__(self, inner: VectorStore, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        for attempt in self.policy.sync(operation):
            with attempt:
                return call()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def ping(self) -> None:
        # Health answers fast: a single attempt, no backoff.
        self.inner.ping()

    def list_collections(self) -> list[str]:
        return self._call("list_collections", self.inner.list_collections)

    def collection_exists(self, name: str) -> bool:
        return self._call("collection_exists", lambda: self.inner.collection_exists(name))

    def ensure_collection(self, name: str, dim: int) -> None:
        self._call("ensure_collection", lambda: self.inner.ensure_collection(name, dim))

    def drop_collection(self, name: str) -> bool:
        return self._call("drop_collection", lambda: self.inner.drop_collection(name))

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        self._call("upsert", lambda: self.inner.upsert(name, points))

    def retrieve(self, name: str, ids: Sequence[str]) -> list[Record]:
        return self._call("retrieve", lambda: self.inner.retrieve(name, ids))

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._call("delete", lambda: self.inner.delete(name, ids))

    def delete_where(self, name: str, where: Where) -> None:
        self._call("delete_where", lambda: self.inner.delete_where(name, where))

    def count(self, name: str, where: Where | None) -> int:
        return self._call("count", lambda: self.inner.count(name, where))

    def scroll(
        self, name: str, where: Where | None, limit: int, offset: str | None
    ) -> tuple[list[Record], str | None]:
        return self._call("scroll", lambda: self.inner.scroll(name, where, limit, offset))

    def search(self, name: str, request: SearchRequest) -> list[Hit]:
        return self._call("search", lambda: self.inner.search(name, request))

    def close(self) -> None:
        self.inner.close()
