"""Helpers for the Docker/Prometheus tests: external tools, and a tiny HTTP server.

A missing tool skips a test on a developer's machine, but fails it in CI (``CI`` set),
so CI can never pass by skipping what it is meant to check.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "compose.p2.yml"
ENV_EXAMPLE = ROOT / ".env.example"
WORKER_COMPOSE_FILE = ROOT / "docker" / "compose.worker.yml"
WORKER_ENV_EXAMPLE = ROOT / "docker" / "worker.env.example"


def require_tool(name: str, package: str) -> str:
    """Path of ``name``; skips the test without it, except in CI where it fails."""
    path = shutil.which(name)
    if path is not None:
        return path
    unavailable(f"{name} not found: apt-get install -y {package}")


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it in CI, where nothing may be skipped for want of a tool."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must install it)")
    pytest.skip(message)


@contextmanager
def http_server(routes: dict[str, int]) -> Iterator[int]:
    """Serve ``GET path`` with the given status on 127.0.0.1; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = routes.get(self.path, 404)
            body = b"ok" if status == 200 else b"not ready"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
