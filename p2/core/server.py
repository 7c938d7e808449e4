"""Run an ASGI app with the settings P2 uses everywhere (httptools, uvloop)."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp

from p2.core.logging import configure_logging


def serve(app: ASGIApp, *, host: str, port: int, log_level: str, service: str) -> None:
    configure_logging(log_level, service)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=5,
        log_config=None,
    )
    uvicorn.Server(config).run()
