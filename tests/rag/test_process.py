"""``python -m rag`` as a real process: data indexed before a hard kill is there after."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx

from p2.core.process import free_port, spawn, terminate, wait_healthy
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS


def _start(home: Path, embedding: ThreadServer, gateway: ThreadServer) -> tuple[object, str]:
    port = free_port()
    env = {"P2_HOME": str(home), "EMBEDDING_URL": embedding.url, "RAG_GATEWAY_URL": gateway.url}
    proc = spawn(
        [sys.executable, "-m", "rag", "--port", str(port)], env=env, log_path=home / "rag.log"
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/health", timeout=60, proc=proc)
    return proc, url


def test_data_survives_a_hard_kill(
    tmp_path: Path, embedding_server: ThreadServer, gateway_server: ThreadServer
) -> None:
    proc, url = _start(tmp_path, embedding_server, gateway_server)
    try:
        docs = [{"id": k, "text": v} for k, v in DOCS.items()]
        answer = httpx.post(f"{url}/index?collection=kb", json={"documents": docs}, timeout=60)
        assert answer.status_code == 200
        before = httpx.get(f"{url}/v1/rag/collections").json()
    finally:
        proc.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
        proc.wait()  # type: ignore[attr-defined]
    proc, url = _start(tmp_path, embedding_server, gateway_server)
    try:
        assert httpx.get(f"{url}/v1/rag/collections").json() == before
        results = httpx.post(
            f"{url}/v1/rag/query", json={"collection": "kb", "query": "moon and tides"}
        ).json()["results"]
        assert results[0]["document_id"] == "tides.txt"
    finally:
        terminate(proc)  # type: ignore[arg-type]
    assert (tmp_path / "qdrant" / "kb").is_dir()
