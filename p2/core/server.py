"""Run an ASGI app with the settings P2 uses everywhere (httptools, uvloop)."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp

from p2.core.logging import configure_logging
from p2.core.settings import CoreSettings


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


def run_service(service: str, app: ASGIApp, *, host: str, port: int, banner: str) -> None:
    """The ``serve`` command of every service: one banner line, then serve until stopped."""
    core = CoreSettings()
    print(f"P2 {service}: {banner}", flush=True)
    serve(app, host=host, port=port, log_level=core.log_level, service=service)
