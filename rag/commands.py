"""Entry points the ``p2`` CLI wires: ``p2 serve rag``."""

from __future__ import annotations

import logging

from rag.settings import RagSettings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve the RAG API (default 127.0.0.1:8002) in the foreground."""
    from p2.core.server import serve as run
    from p2.core.settings import CoreSettings, given
    from rag.app import create_app
    from rag.store.factory import describe

    settings = RagSettings.build(**given(host=host, port=port))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per call otherwise
    core = CoreSettings()
    print(
        f"P2 rag: http://{settings.host}:{settings.port} ({describe(settings, core.home)}; "
        f"embeddings from {settings.embedding_url}, answers through {settings.gateway_url})",
        flush=True,
    )
    run(
        create_app(settings, core),
        host=settings.host,
        port=settings.port,
        log_level=core.log_level,
        service="rag",
    )
