"""Retrieval: hybrid (dense + BM25, reciprocal-rank fused) or dense-only, best first.

Hits are over-fetched and filtered against their documents' manifests, so a
reader never sees two versions of a document that is being replaced; the
manifests also give each hit its document's source and metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from rag.collection_model import recorded_model
from rag.documents import CHUNKS, manifests_by_doc
from rag.engine import Engine
from rag.identifiers import check_collection, doc_point_id
from rag.store.base import Hit, SearchMode, SearchRequest


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
    """Reads a collection: the chunks that best match a question, of current versions only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def query(
        self,
        collection: str,
        text: str,
        top_k: int | None = None,
        mode: SearchMode = SearchMode.HYBRID,
    ) -> list[Result]:
        engine = self.engine
        check_collection(collection)
        await engine.require_collection(collection)
        k = top_k or engine.settings.top_k
        started = time.perf_counter()
        dense = None
        if mode is not SearchMode.SPARSE:
            model = await to_thread.run_sync(recorded_model, engine.store, collection)
            dense = (await engine.embedder.embed([text], "embed_query", model))[0]
        request = SearchRequest(
            mode=mode,
            limit=2 * k + 4,
            dense=dense,
            sparse=engine.bm25.query(text) if mode is not SearchMode.DENSE else None,
            where=CHUNKS,
            prefetch=max(40, 4 * k),
            rrf_k=engine.settings.rrf_k,
            exact=engine.settings.qdrant_exact,
        )
        hits = await to_thread.run_sync(engine.store.search, collection, request)
        results = (await self._current(collection, hits))[:k]
        engine.metrics.query_seconds.labels(mode.value).observe(time.perf_counter() - started)
        return results

    async def _current(self, collection: str, hits: list[Hit]) -> list[Result]:
        """Drop hits from a version that is not (or no longer) its document's current one."""
        doc_ids = list(dict.fromkeys(str(h.payload.get("doc_id")) for h in hits))
        ids = [doc_point_id(d) for d in doc_ids]
        manifests = manifests_by_doc(
            await to_thread.run_sync(self.engine.store.retrieve, collection, ids)
        )
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
                    metadata=dict(manifest.get("metadata") or {}),
                    source=str(manifest.get("source") or p["doc_id"]),
                )
            )
        return results
