"""A fast OpenAI embeddings endpoint for tests where the vectors' meaning does not matter.

Each text becomes a normalised bag of its hashed words (384 dimensions), so
texts sharing words are near; computing it costs microseconds. It can require
a key, and refuses (400) any text containing ``refuse_word``, like a service
whose input limit a text breaks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

DIM = 384


def vector(text: str) -> list[float]:
    row = np.zeros(DIM, dtype=np.float32)
    for word in text.lower().split():
        row[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest()) % DIM] += 1
    norm = float(np.linalg.norm(row)) or 1.0
    unit: list[float] = (row / norm).tolist()
    return unit


def fake_embedding_app(api_key: str | None = None, refuse_word: str | None = None) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        body: dict[str, Any] = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if refuse_word and any(refuse_word in t for t in texts):
            error = {"message": "input refused", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, 400)
        app.state.calls += 1
        data = [
            {"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)
        ]
        return JSONResponse({"object": "list", "data": data, "model": body.get("model")})

    return app
