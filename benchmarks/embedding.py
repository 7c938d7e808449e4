"""``p2 bench embedding``: P2's embedding service against plain sentence-transformers.

Both sides embed the same real passages (the standard library's docstrings)
with the same model, all-MiniLM-L6-v2. The reference is sentence-transformers
as a user gets it: torch on CPU, default settings, ``model.encode(passages)``
(its own batches of 32, sorted by length), in this process. P2 is the real
service in a child process with its default settings, hit over HTTP by 32
concurrent clients that each send one passage per request (base64, like the
OpenAI SDK). Rounds alternate so machine noise hits both sides, and the
ratio printed is the median of the per-round ratios. For
information, sentence-transformers called by 32 client threads at once is
measured too, and P2's vectors are compared with the reference's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np

from benchmarks.stats import rounded
from p2.core.process import free_port, running
from p2.core.settings import CoreSettings

MODEL = "all-MiniLM-L6-v2"


@contextmanager
def running_service(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    log = CoreSettings().home / "logs" / "bench-embedding.log"
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "embedding", "--port", str(port)]
    # the first start exports and quantizes the model (cached): allow for it
    with running(argv, health_url=f"{url}/health", timeout=600, env=env, log_path=log):
        yield url


async def _service_round(
    url: str, texts: Sequence[str], concurrency: int
) -> tuple[float, np.ndarray[Any, np.dtype[np.float32]]]:
    out: list[np.ndarray[Any, np.dtype[np.float32]] | None] = [None] * len(texts)
    pending = iter(range(len(texts)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for index in pending:
            body = {"model": MODEL, "input": texts[index], "encoding_format": "base64"}
            response = await client.post("/v1/embeddings", json=body)
            response.raise_for_status()
            raw = base64.b64decode(response.json()["data"][0]["embedding"])
            out[index] = np.frombuffer(raw, dtype="<f4")

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await _connect(client)
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, np.stack([v for v in out if v is not None])


async def _connect(client: httpx.AsyncClient) -> None:
    """Open the connection before the clock starts."""
    (await client.get("/health")).raise_for_status()


def _st_threads(model: Any, texts: Sequence[str], concurrency: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda text: model.encode(text), texts))
    return time.perf_counter() - started


def run(
    *,
    passages: int = 384,
    concurrency: int = 32,
    rounds: int = 5,
    backend: str | None = None,
) -> dict[str, Any]:
    """Measure, print a JSON report and the ratio line; return the report."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding.model import default_model_dir
    from embedding.samples import stdlib_passages

    texts = list(stdlib_passages()[:passages])
    if len(texts) < passages:
        raise SystemExit(f"only {len(texts)} passages available; ask for fewer")
    env = {"HF_HUB_OFFLINE": "1"}
    if backend is not None:
        env["EMBEDDING_BACKEND"] = backend
    model = SentenceTransformer(str(default_model_dir()), device="cpu")
    times: dict[str, list[float]] = {"st_default": [], "p2": [], "st_threads": []}
    with running_service(env) as url:
        model.encode(texts[:32])  # warm-up, both sides
        asyncio.run(_service_round(url, texts[:32], concurrency))
        reference: np.ndarray[Any, np.dtype[np.float32]] | None = None
        served: np.ndarray[Any, np.dtype[np.float32]] | None = None
        for _ in range(rounds):
            started = time.perf_counter()
            reference = np.asarray(model.encode(texts), dtype=np.float32)
            times["st_default"].append(time.perf_counter() - started)
            elapsed, served = asyncio.run(_service_round(url, texts, concurrency))
            times["p2"].append(elapsed)
            times["st_threads"].append(_st_threads(model, texts, concurrency))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert reference is not None and served is not None
    rate = {side: len(texts) * rounds / sum(seconds) for side, seconds in times.items()}
    cosine = np.sum(reference * served, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(served, axis=1)
    )
    # Rounds pair the two sides a few seconds apart; the median of the per-round ratios
    # resists a burst of load from elsewhere that hits one side of one round.
    per_round = [st / p2 for st, p2 in zip(times["st_default"], times["p2"], strict=True)]
    ratio = statistics.median(per_round)
    report = {
        "model": MODEL,
        "passages": len(texts),
        "mean_words": rounded(sum(len(t.split()) for t in texts) / len(texts), 1),
        "rounds": rounds,
        "concurrency": concurrency,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "p2_backend": _backend_of(metrics),
        "sentences_per_second": {side: rounded(value, 2) for side, value in rate.items()},
        "seconds_per_round": {k: [rounded(s, 2) for s in v] for k, v in times.items()},
        "p2_vs_reference_cosine": {
            "mean": rounded(float(cosine.mean()), 4),
            "min": rounded(float(cosine.min()), 4),
        },
        "p2_batch_size_mean": rounded(_batch_mean(metrics), 1),
        "ratio_per_round": [rounded(r, 2) for r in per_round],
        "ratio_of_totals": rounded(rate["p2"] / rate["st_default"], 2),
        "ratio_p2_over_st_default": rounded(ratio, 2),
    }
    print(json.dumps(report, indent=2))
    print(f"embedding: p2/st-default = {ratio:.2f}")
    return report


def _backend_of(metrics: str) -> str:
    for line in metrics.splitlines():
        if line.startswith("p2_embedding_info{"):
            return line.split('backend="', 1)[1].split('"', 1)[0]
    return "unknown"


def _batch_mean(metrics: str) -> float:
    values = {}
    for line in metrics.splitlines():
        for key in ("p2_embedding_batch_inputs_sum", "p2_embedding_batch_inputs_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    count = values.get("p2_embedding_batch_inputs_count", 0.0)
    return values.get("p2_embedding_batch_inputs_sum", 0.0) / count if count else 0.0


if __name__ == "__main__":
    run()
