"""``python -m embedding`` as a real process, used through the official OpenAI SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from embedding.runtime import Runtime
from p2.core.process import free_port, running


@pytest.fixture(scope="module")
def server_url(p2_home: Path, int8_runtime: Runtime) -> Iterator[str]:
    # int8_runtime has exported and quantized into $P2_HOME: this start only loads it
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = p2_home / "logs" / f"embedding-{port}.log"
    with running(
        [sys.executable, "-m", "embedding", "--port", str(port)],
        health_url=f"{url}/health",
        timeout=300,
        env={"P2_HOME": str(p2_home), "EMBEDDING_THREADS": "2"},
        log_path=log,
    ) as proc:
        yield url
    # uvicorn re-raises SIGTERM after its graceful shutdown, hence -15 rather than 0
    assert proc.returncode in (0, -15)
    assert "Application shutdown complete" in log.read_text(errors="replace")


def test_sdk_embeds_through_the_real_server(server_url: str, int8_runtime: Runtime) -> None:
    client = openai.OpenAI(api_key="unused", base_url=f"{server_url}/v1", max_retries=0)
    texts = ["The server runs in its own process.", "It answers the OpenAI SDK."]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    served = np.array([d.embedding for d in result.data], dtype=np.float32)
    local = int8_runtime.embed_texts(texts)
    assert float(np.min(np.sum(served * local, axis=1))) > 0.98  # int8, other batches
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4o", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="all-MiniLM-L6-v2", input="x", dimensions=256)
