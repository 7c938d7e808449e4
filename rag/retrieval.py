"""Retrieval: hybrid (dense + BM25, reciprocal-rank fused) or dense-only, best first.

Hits are over-fetched and filtered against their documents' manifests, so a
reader never sees two versions of a document that is being replaced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from p2.core.errors import NotFound
from rag.documents import CHUNKS, manifests_by_doc
from rag.embedder import Embedder
from rag.metrics import RagMetrics
from rag.names import check_collection, doc_point_id
from rag.settings import RagSettings
from rag.sparse import Bm25Encoder
from rag.store.base import Hit, SearchMode, SearchRequest, VectorStore
from rag.threads import off_loop


@dataclass(frozen=True)
class Result:
    document_id: str
    chunk_index: int
    score: float
    text: str
    metadata: dict[str, Any]
    source: str

    def as_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "score": self.score,
            "text": self.text,
            "metadata": self.metadata,
            "source": self.source,
        }


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        bm25: Bm25Encoder,
        settings: RagSettings,
        metrics: RagMetrics,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.bm25 = bm25
        self.settings = settings
        self.metrics = metrics

    async def query(
        self,
        collection: str,
        text: str,
        top_k: int | None = None,
        mode: SearchMode = SearchMode.HYBRID,
    ) -> list[Result]:
        check_collection(collection)
        if not await off_loop(lambda: self.store.collection_exists(collection)):
            raise NotFound(
                f"The collection '{collection}' does not exist.",
                param="collection",
                code="collection_not_found",
            )
        k = top_k or self.settings.top_k
        started = time.perf_counter()
        dense = None
        if mode is not SearchMode.SPARSE:
            dense = (await self.embedder.embed([text], "embed_query"))[0]
        request = SearchRequest(
            mode=mode,
            limit=2 * k + 4,
            dense=dense,
            sparse=self.bm25.query(text) if mode is not SearchMode.DENSE else None,
            where=CHUNKS,
            prefetch=max(40, 4 * k),
            rrf_k=self.settings.rrf_k,
            exact=self.settings.qdrant_exact,
        )
        hits = await off_loop(lambda: self.store.search(collection, request))
        results = (await self._current(collection, hits))[:k]
        self.metrics.query_seconds.labels(mode.value).observe(time.perf_counter() - started)
        return results

    async def _current(self, collection: str, hits: list[Hit]) -> list[Result]:
        """Drop hits from a version that is not (or no longer) its document's current one."""
        doc_ids = list(dict.fromkeys(str(h.payload.get("doc_id")) for h in hits))
        ids = [doc_point_id(d) for d in doc_ids]
        manifests = manifests_by_doc(await off_loop(lambda: self.store.retrieve(collection, ids)))
        results = []
        for hit in hits:
            p = hit.payload
            manifest = manifests.get(str(p.get("doc_id")))
            if manifest is None or manifest.get("content_hash") != p.get("content_hash"):
                continue
            results.append(
                Result(
                    document_id=str(p["doc_id"]),
                    chunk_index=int(p.get("chunk_index", 0)),
                    score=hit.score,
                    text=str(p.get("text", "")),
                    metadata=dict(p.get("metadata") or {}),
                    source=str(p.get("source", p["doc_id"])),
                )
            )
        return results
