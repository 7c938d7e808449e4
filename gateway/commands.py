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
    from p2.core.server import run_service

    settings = load_settings(GatewaySettings.build, config=config, host=host, port=port)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise SettingsError(f"{exc} ({settings.config_path()})") from exc
    run_service(
        "gateway",
        app,
        host=settings.host,
        port=settings.port,
        banner=f"http://{settings.host}:{settings.port}/v1 (config {settings.config_path()}; "
        "GET /health/ready with an admin key lists every backend)",
        keyring=app.state.keyring,  # the master key of the config counts too
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m gateway", serve, OPTIONS, argv)
