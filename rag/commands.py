"""``p2 serve rag`` and ``python -m rag``: the RAG API in the foreground."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from p2.core import commands
from p2.core.settings import load_settings

OPTIONS = (
    commands.Option("host", "bind address (env RAG_HOST)"),
    commands.Option("port", "port (env RAG_PORT, 8002)", int),
)


def serve(host: str | None = None, port: int | None = None) -> None:
    """Index documents into Qdrant, retrieve, and answer with citations."""
    from p2.core.server import run_service
    from p2.core.settings import CoreSettings
    from rag.app import create_app
    from rag.settings import RagSettings
    from rag.store.factory import describe

    settings = load_settings(RagSettings.build, host=host, port=port)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per call otherwise
    core = CoreSettings()
    run_service(
        "rag",
        create_app(settings, core),
        host=settings.host,
        port=settings.port,
        banner=f"http://{settings.host}:{settings.port} ({describe(settings, core.home)}; "
        f"embeddings from {settings.embedding_url}, answers through {settings.gateway_url})",
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m rag", serve, OPTIONS, argv)
