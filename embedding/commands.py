"""Entry points the ``p2`` command line wires: ``p2 serve embedding``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from embedding.settings import EmbeddingSettings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve ``EMBEDDING_*`` settings in the foreground; ``host``/``port`` override env."""
    from embedding.app import create_app
    from p2.core.server import serve as run_server
    from p2.core.settings import CoreSettings, given

    settings = EmbeddingSettings(**given(host=host, port=port))
    core = CoreSettings()
    what = settings.model or "all-MiniLM-L6-v2 (default)"
    print(
        f"P2 embedding: serving {what} on http://{settings.host}:{settings.port}/v1 "
        f"(backend {settings.backend.value}; GET /health turns 200 when the model is loaded)",
        flush=True,
    )
    run_server(
        create_app(settings, core),
        host=settings.host,
        port=settings.port,
        log_level=core.log_level,
        service="embedding",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m embedding", description=serve.__doc__)
    parser.add_argument("--host", default=None, help="bind address (env EMBEDDING_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (env EMBEDDING_PORT)")
    args = parser.parse_args(argv)
    serve(args.host, args.port)
