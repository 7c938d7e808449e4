"""``p2 serve embedding`` and ``python -m embedding``: the embeddings API in the foreground."""

from __future__ import annotations

from collections.abc import Sequence

from p2.core import commands
from p2.core.settings import load_settings

OPTIONS = (
    commands.Option("host", "bind address (env EMBEDDING_HOST)"),
    commands.Option("port", "port (env EMBEDDING_PORT, 8003)", int),
)


def serve(host: str | None = None, port: int | None = None) -> None:
    """OpenAI /v1/embeddings: sentence-transformers, ONNX int8, dynamic micro-batching."""
    from embedding.app import create_app
    from embedding.settings import EmbeddingSettings
    from p2.core.server import run_service

    settings = load_settings(EmbeddingSettings.build, host=host, port=port)
    what = settings.model or "all-MiniLM-L6-v2 (default)"
    run_service(
        "embedding",
        create_app(settings),
        host=settings.host,
        port=settings.port,
        banner=f"serving {what} on http://{settings.host}:{settings.port}/v1 (backend "
        f"{settings.backend.value}; GET /health turns 200 when the model is loaded)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m embedding", serve, OPTIONS, argv)
