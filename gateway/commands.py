"""``p2 serve gateway`` and ``python -m gateway``: the OpenAI front door in the foreground."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from p2.core import commands
from p2.core.settings import SettingsError, load_settings

OPTIONS = (
    commands.Option("config", "LiteLLM-format config (env GATEWAY_CONFIG)", Path),
    commands.Option("host", "bind address (env GATEWAY_HOST)"),
    commands.Option("port", "port (env GATEWAY_PORT, 8000)", int),
)


def serve(config: Path | None = None, host: str | None = None, port: int | None = None) -> None:
    """The OpenAI front door: priority routing and failover across the inference servers."""
    from gateway.app import create_app
    from gateway.config import ConfigError
    from gateway.settings import GatewaySettings
    from gateway.workers import serve_worker, supervise, worker_fd
    from p2.core.server import run_service

    settings = load_settings(GatewaySettings.build, config=config, host=host, port=port)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise SettingsError(f"{exc} ({settings.config_path()})") from exc
    fd = worker_fd()
    if fd is not None:  # one of GATEWAY_WORKERS
        serve_worker(app, fd, settings)
        return
    banner = (
        f"http://{settings.host}:{settings.port}/v1 (config {settings.config_path()}; "
        "GET /health/ready with an admin key lists every backend)"
    )
    keyring = app.state.keyring  # the master key of the config counts too
    if settings.workers > 1:
        supervise(settings, keyring, banner)
        return
    run_service(
        "gateway", app, host=settings.host, port=settings.port, banner=banner, keyring=keyring
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m gateway", serve, OPTIONS, argv)


_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})  # as the settings read booleans


def check_config(path: Path) -> int:
    """Print what the gateway will do with the config at ``path``; 0 when it would start,
    1 when it holds refused keys (and ``P2_LENIENT_CONFIG`` is not set), 2 when invalid."""
    import os

    from gateway.explain import check

    lenient = os.environ.get("P2_LENIENT_CONFIG", "").lower() in _TRUE
    code, lines = check(path, lenient=lenient)
    print("\n".join(lines))
    return code
