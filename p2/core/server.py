"""Run an ASGI app with the settings P2 uses everywhere (httptools, uvloop), hardened.

uvicorn alone lets a client hold a connection forever: by sending nothing, by
sending its headers a byte at a time (slowloris), by never finishing its body,
or by never reading a streamed answer (the server's send then waits forever and
keeps a model slot busy). ``GuardedHttpTools`` puts a deadline on each of these
and closes the connection when one passes; ``P2_MAX_CONNECTIONS`` caps
concurrent connections per server (503 beyond it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from p2.core.keys import Keyring, KeySettings
from p2.core.logging import configure_logging
from p2.core.settings import CoreSettings, ServiceSettings, SettingsError


class ServerSettings(ServiceSettings):
    """Connection limits of every P2 HTTP server (``P2_`` prefix), in seconds and counts."""

    model_config = SettingsConfigDict(env_prefix="P2_", extra="ignore")

    header_timeout: float = Field(default=10.0, gt=0)  # connect -> request head complete
    body_timeout: float = Field(default=120.0, gt=0)  # head -> body complete (uploads)
    write_timeout: float = Field(default=30.0, gt=0)  # a client not reading what it is sent
    idle_timeout: float = Field(default=30.0, gt=0)  # keep-alive between requests
    max_connections: int = Field(default=2048, ge=1)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on reading the request and on writing."""

    def __init__(self, *args: Any, guard: ServerSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._guard.header_timeout)  # a client that connects and says nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self._guard.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self._guard.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self._guard.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _stalled(self) -> None:
        """The client stopped reading: drop it, so the app's send fails and its work stops."""
        self._write_deadline = None
        self.transport.abort()


def _protocol(guard: ServerSettings) -> type[GuardedHttpTools]:
    class Protocol(GuardedHttpTools):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, guard=guard, **kwargs)

    return Protocol


def server_config(
    app: ASGIApp, *, host: str, port: int, log_level: str, guard: ServerSettings | None = None
) -> uvicorn.Config:
    guard = guard or ServerSettings()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=_protocol(guard),
        loop="uvloop",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=int(guard.idle_timeout),
        limit_concurrency=guard.max_connections,
        log_config=None,
    )


def serve(app: ASGIApp, *, host: str, port: int, log_level: str, service: str) -> None:
    configure_logging(log_level, service)
    uvicorn.Server(server_config(app, host=host, port=port, log_level=log_level)).run()


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_exposure(service: str, host: str, keyring: Keyring, allow_open: bool) -> str | None:
    """A warning for an open loopback server; ``SettingsError`` for an open exposed one."""
    if not keyring.open:
        return None
    if host in LOOPBACK:
        return (
            f"{service} has no API keys (P2_API_KEYS / P2_ADMIN_KEYS): anyone who can reach "
            f"{host} may call it"
        )
    if allow_open:
        return f"{service} listens on {host} with NO API keys (P2_ALLOW_OPEN=1)"
    raise SettingsError(
        f"{service} would listen on {host} with no API keys: set P2_API_KEYS (and "
        "P2_ADMIN_KEYS), or P2_ALLOW_OPEN=1 to run it open on purpose"
    )


def run_service(
    service: str,
    app: ASGIApp,
    *,
    host: str,
    port: int,
    banner: str,
    keyring: Keyring | None = None,
) -> None:
    """The ``serve`` command of every service: refuse an open exposed port, say one banner
    line (and one warning when open), then serve until stopped. ``keyring``: the keys the
    app really checks, when more than ``KeySettings`` gives (the gateway's master key)."""
    core = CoreSettings()
    keys = keyring if keyring is not None else KeySettings().keyring()
    warning = check_exposure(service, host, keys, core.allow_open)
    print(f"P2 {service}: {banner}", flush=True)
    if warning:
        print(f"P2 {service}: warning: {warning}", flush=True)
    serve(app, host=host, port=port, log_level=core.log_level, service=service)
