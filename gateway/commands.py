"""Entry points the ``p2`` CLI calls."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config import ConfigError
from gateway.settings import GatewaySettings
from p2.core.settings import given


def load_settings(config: Path | None, host: str | None, port: int | None) -> GatewaySettings:
    return GatewaySettings(**given(config=config, host=host, port=port))


def serve(config: Path | None = None, host: str | None = None, port: int | None = None) -> None:
    """``p2 serve gateway``: run the gateway in the foreground until interrupted."""
    from gateway.app import create_app
    from p2.core.server import serve as run_server

    settings = load_settings(config, host, port)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"error: {exc} ({settings.config_path()})", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc
    print(
        f"P2 gateway: http://{settings.host}:{settings.port}/v1 "
        f"(config {settings.config}; GET /health/ready lists every backend)",
        flush=True,
    )
    run_server(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, service="gateway"
    )
