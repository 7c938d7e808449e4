"""``p2 bench rag``: retrieval quality and speed of the RAG service, on an offline dataset.

Dataset (built mechanically, offline, from the running Python's standard
library; PSF licence): every function, method or class docstring with a
one-paragraph summary of 5-25 words and a body of at least 200 characters.
The body is a document; the summary line is its query; the one relevant
document of a query is the body it was cut from (known-item retrieval, the
judgments need no human). Duplicate bodies and summaries are dropped.

Measured through the real services (``python -m embedding``, ``python -m rag``
in child processes): nDCG@10 and recall@5 for dense and hybrid retrieval;
indexing chunks/s through RAG against raw embedding throughput (the same chunk
texts posted to the same embedding service in the same batch size, before and
after indexing); query latency through the API; and retrieval-only latency
(store search with precomputed query vectors) at the corpus size and at 100 k
chunks (the corpus's real vectors plus jittered copies).
"""

from __future__ import annotations

import ast
import math
import os
import random
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.stats import percentile
from p2.core.process import ProcessError, free_port, spawn, terminate, wait_healthy

_SKIP = re.compile(
    r"(^|/)(test|tests|idlelib|lib2to3|turtledemo|site-packages|__pycache__|ensurepip|pydoc_data)(/|$)"
)
COLLECTION = "bench"
EMBED_BATCH = 64


@dataclass(frozen=True)
class Item:
    doc_id: str
    query: str
    text: str


def build_dataset(limit: int | None = None) -> list[Item]:
    """Known-item pairs (summary line -> rest of the docstring) from the stdlib, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    items: list[Item] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if _SKIP.search(rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            doc = ast.get_docstring(node)
            parts = re.split(r"\n\s*\n", doc.strip(), maxsplit=1) if doc else []
            if len(parts) < 2:
                continue
            summary, body = " ".join(parts[0].split()), parts[1].strip()
            if 5 <= len(summary.split()) <= 25 and len(body) >= 200:
                items.append(Item(f"{rel}:{node.lineno}:{node.name}", summary, body))
    bodies: dict[str, int] = {}
    queries: dict[str, int] = {}
    for item in items:
        bodies[item.text] = bodies.get(item.text, 0) + 1
        queries[item.query] = queries.get(item.query, 0) + 1
    unique = [i for i in items if bodies[i.text] == 1 and queries[i.query] == 1]
    if limit is not None and limit < len(unique):
        step = len(unique) / limit
        unique = [unique[int(k * step)] for k in range(limit)]
    return unique


def ndcg_at_10(ranked: list[str], relevant: str) -> float:
    """Binary relevance, one relevant document: 1/log2(rank+1) if in the top 10."""
    for rank, doc in enumerate(ranked[:10], start=1):
        if doc == relevant:
            return 1.0 / math.log2(rank + 1)
    return 0.0


def _start(module: str, port: int, env: dict[str, str], log: Path, ready: str) -> Any:
    """Start ``python -m module``; ``ready`` is the path that answers 200 once it serves."""
    proc = spawn([sys.executable, "-m", module, "--port", str(port)], env=env, log_path=log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}{ready}", timeout=900, proc=proc)
    except ProcessError:
        terminate(proc)
        print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    return proc


def _raw_embedding(client: httpx.Client, texts: list[str]) -> tuple[float, list[list[float]]]:
    started = time.perf_counter()
    vectors: list[list[float]] = []
    for i in range(0, len(texts), EMBED_BATCH):
        body = {"model": "all-MiniLM-L6-v2", "input": texts[i : i + EMBED_BATCH]}
        response = client.post("/v1/embeddings", json=body)
        response.raise_for_status()
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        vectors += [d["embedding"] for d in data]
    return len(texts) / (time.perf_counter() - started), vectors


def _index(client: httpx.Client, items: list[Item], per_request: int = 128) -> float:
    started = time.perf_counter()
    chunks = 0
    for i in range(0, len(items), per_request):
        docs = [{"id": it.doc_id, "text": it.text} for it in items[i : i + per_request]]
        response = client.post(
            f"/v1/rag/collections/{COLLECTION}/documents", json={"documents": docs}
        )
        response.raise_for_status()
        chunks += sum(d["chunks"] for d in response.json()["documents"])
    return chunks / (time.perf_counter() - started)


def _quality(
    client: httpx.Client, items: list[Item], mode: str
) -> tuple[float, float, list[float]]:
    ndcg, recall, latencies = [], [], []
    for item in items:
        body = {"collection": COLLECTION, "query": item.query, "top_k": 20, "mode": mode}
        started = time.perf_counter()
        response = client.post("/v1/rag/query", json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        ranked = list(dict.fromkeys(r["document_id"] for r in response.json()["results"]))
        ndcg.append(ndcg_at_10(ranked, item.doc_id))
        recall.append(1.0 if item.doc_id in ranked[:5] else 0.0)
    return float(np.mean(ndcg)), float(np.mean(recall)), latencies


def _retrieval_latency(
    store: Any, collection: str, queries: list[tuple[list[float], Any]], mode: Any
) -> tuple[float, float]:
    from rag.documents import CHUNKS
    from rag.store.base import SearchRequest

    times = []
    for dense, sparse in queries:
        request = SearchRequest(
            mode=mode, limit=12, dense=dense, sparse=sparse, where=CHUNKS, prefetch=40
        )
        started = time.perf_counter()
        store.search(collection, request)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 99)


def _fill(store: Any, texts: list[str], vectors: list[list[float]], total: int) -> None:
    """``total`` chunks: the real ones, then jittered copies (real BM25 of the same text)."""
    from rag.sparse import Bm25Encoder
    from rag.store.base import StoredPoint

    bm25 = Bm25Encoder()
    sparse = [bm25.document(t) for t in texts]
    base = np.asarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(7)
    store.ensure_collection("scale", base.shape[1])
    for start in range(0, total, 2000):
        idx = np.arange(start, min(total, start + 2000)) % len(texts)
        dense = base[idx] + (start >= len(texts)) * rng.normal(0, 0.02, (len(idx), base.shape[1]))
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        points = [
            StoredPoint(
                f"00000000-0000-4000-8000-{start + k:012d}",
                {"kind": "chunk", "doc_id": str(j), "chunk_index": 0, "text": texts[j]},
                dense[k].tolist(),
                sparse[j],
            )
            for k, j in enumerate(idx.tolist())
        ]
        store.upsert("scale", points)


def run(
    *,
    docs: int | None = None,
    queries: int = 500,
    scale: int = 100_000,
    embedding_url: str | None = None,
) -> dict[str, float]:
    """Print the benchmark's lines; the last is the summary line. Returns the numbers."""
    from rag import chunking
    from rag.settings import RagSettings
    from rag.sparse import Bm25Encoder
    from rag.store.base import SearchMode
    from rag.store.edge import EdgeStore

    items = build_dataset(docs)
    rng = random.Random(11)
    asked = rng.sample(items, min(queries, len(items)))
    defaults = RagSettings()
    texts = [
        c.text
        for it in items
        for c in chunking.split(it.text, defaults.chunk_size, defaults.chunk_overlap)
    ]
    print(
        f"rag: dataset = Python {sys.version_info.major}.{sys.version_info.minor} stdlib "
        f"docstrings, {len(items)} documents, {len(texts)} chunks, {len(asked)} queries "
        "(known-item: summary line -> rest of its docstring)",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="p2-bench-rag-"))
    procs = []
    env = {"HF_HUB_OFFLINE": "1", "QDRANT_PATH": str(work / "qdrant"), "RAG_EMBED_BATCH": "64"}
    try:
        if embedding_url is None:
            port = free_port()
            procs.append(_start("embedding", port, env, work / "embedding.log", "/health"))
            embedding_url = f"http://127.0.0.1:{port}"
        rag_port = free_port()
        # No gateway in this benchmark, so RAG's /health stays 503: wait on its API instead.
        rag_env = {**env, "EMBEDDING_URL": embedding_url}
        rag_proc = _start("rag", rag_port, rag_env, work / "rag.log", "/v1/rag/collections")
        procs.append(rag_proc)
        embed = httpx.Client(base_url=embedding_url, timeout=600)
        rag = httpx.Client(base_url=f"http://127.0.0.1:{rag_port}", timeout=600)
        raw1, vectors = _raw_embedding(embed, texts)
        index_rate = _index(rag, items)
        raw2, _ = _raw_embedding(embed, texts)
        raw = (raw1 + raw2) / 2
        print(
            f"rag: indexing {index_rate:.1f} chunks/s through RAG; raw embedding "
            f"{raw:.1f} chunks/s ({raw1:.1f}, {raw2:.1f}; same texts, batch {EMBED_BATCH})",
            flush=True,
        )
        results: dict[str, tuple[float, float, list[float]]] = {}
        for mode in ("dense", "hybrid"):
            results[mode] = _quality(rag, asked, mode)
            ndcg, recall, lat = results[mode]
            print(
                f"rag: {mode:6} ndcg@10 = {ndcg:.3f}, recall@5 = {recall:.3f}; query via API "
                f"(embed + retrieve) p50 {percentile(lat, 50):.1f} ms, "
                f"p99 {percentile(lat, 99):.1f} ms",
                flush=True,
            )
        query_vectors = _raw_embedding(embed, [it.query for it in asked[:300]])[1]
        terminate(rag_proc)
        procs.remove(rag_proc)

        bm25 = Bm25Encoder()
        prepared = [(v, bm25.query(it.query)) for v, it in zip(query_vectors, asked, strict=False)]
        store = EdgeStore(work / "qdrant")
        latency: dict[str, tuple[float, float]] = {}
        for label, collection in (("corpus", COLLECTION), ("scale", "scale")):
            if collection == "scale":
                started = time.perf_counter()
                _fill(store, texts, vectors, scale)
                print(
                    f"rag: filled {scale} chunks in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            for mode in (SearchMode.DENSE, SearchMode.HYBRID):
                p50, p99 = _retrieval_latency(store, collection, prepared, mode)
                latency[f"{label}-{mode.value}"] = (p50, p99)
            size = len(texts) if label == "corpus" else scale
            print(
                f"rag: retrieval only (exact), {size} chunks: hybrid p50 "
                f"{latency[f'{label}-hybrid'][0]:.1f} ms p99 {latency[f'{label}-hybrid'][1]:.1f} ms"
                f"; dense p50 {latency[f'{label}-dense'][0]:.1f} ms "
                f"p99 {latency[f'{label}-dense'][1]:.1f} ms",
                flush=True,
            )
        store.close()
    finally:
        for proc in procs:
            terminate(proc)
        if not os.environ.get("P2_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    ratio = index_rate / raw
    hybrid, dense = results["hybrid"][0], results["dense"][0]
    p50 = latency["scale-hybrid"][0]
    print(
        f"rag: ndcg@10 hybrid = {hybrid:.3f} (dense {dense:.3f}), index = {ratio:.2f} of raw "
        f"embedding, query p50 = {p50:.0f} ms",
        flush=True,
    )
    return {"ndcg_hybrid": hybrid, "ndcg_dense": dense, "index_ratio": ratio, "query_p50": p50}


if __name__ == "__main__":
    run(docs=int(sys.argv[1]) if len(sys.argv) > 1 else None)
