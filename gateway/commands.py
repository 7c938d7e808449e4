"""Entry points the ``p2`` CLI calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gateway.config import ConfigError
from gateway.settings import GatewaySettings


def load_settings(config: Path | None, host: str | None, port: int | None) -> GatewaySettings:
    overrides: dict[str, Any] = {}
    if config is not None:
        overrides["config"] = config
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return GatewaySettings(**overrides)


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
