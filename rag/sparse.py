"""BM25 sparse vectors, computed in-process by Qdrant Edge's BM25 model.

Documents get term-frequency weights, queries unit weights; the store applies
IDF (the sparse vector is configured with the IDF modifier), which together is
BM25. The same encoder serves both store backends.
"""

from __future__ import annotations

import qdrant_edge as qe

from rag.store.base import Sparse


class Bm25Encoder:
    def __init__(self, avg_len: float = 150.0) -> None:
        # avg_len in tokens: about a default chunk (800 characters).
        self._model = qe.Bm25(qe.Bm25Config(avg_len=avg_len))

    def document(self, text: str) -> Sparse:
        vector = self._model.embed_document(text)
        return Sparse(list(vector.indices), list(vector.values))

    def query(self, text: str) -> Sparse:
        vector = self._model.embed_query(text)
        return Sparse(list(vector.indices), list(vector.values))
