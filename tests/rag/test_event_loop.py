"""Indexing a large document never stalls the event loop: /health answers within 0.5 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.threadserver import ThreadServer

# 4.8 MB of HTML, nearly all tags: about 4 s of parsing on this machine.
TAGGY_HTML = (
    "<html><body><p>" + "<i>word</i> <b>tide</b> " * 200_000 + "</p></body></html>"
).encode()
BIG_TEXT = " ".join(f"Line {i}: the tide rises twice a day under the moon." for i in range(80_000))


def test_health_answers_while_a_large_document_is_indexed(
    make_settings: Callable[..., RagSettings], fast_embedding: ThreadServer, tmp_path: Path
) -> None:
    settings = make_settings(embedding_url=fast_embedding.url, chunk_size=800, chunk_overlap=120)
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            prober.start()
            time.sleep(0.2)
            upload = client.post(
                "/v1/rag/collections/big/documents",
                files=[("files", ("taggy.html", TAGGY_HTML, "text/html"))],
            )
            json_doc = client.post(
                "/v1/rag/collections/big/documents",
                json={"documents": [{"id": "big.txt", "text": BIG_TEXT}]},
            )
        done.set()
        prober.join()
    finally:
        done.set()
        server.stop()
    assert upload.status_code == 200, upload.text
    assert json_doc.status_code == 200, json_doc.text
    assert json_doc.json()["documents"][0]["chunks"] > 4000
    assert len(latencies) > 20
    # Work done on the event loop would stall every probe for seconds. Here the server, the
    # mock embedder and the clients share one interpreter's GIL, so a single answer may lag
    # behind a busy thread: the bound is well under the tightest probe timeout P2 ships (the
    # chaos benchmark's 1 s is for the stack, compose uses 10 s), and most answers are fast.
    assert max(latencies) < 2.0, sorted(latencies)[-5:]
    assert sorted(latencies)[len(latencies) // 2] < 0.05, sorted(latencies)[-5:]
