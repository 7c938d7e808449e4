"""``p2 serve inference`` and ``python -m inference``: serve one role's GGUF in the foreground."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from p2.core import commands
from p2.core.settings import SettingsError, load_settings

OPTIONS = (
    commands.Option("role", "which server: chat (:8001) or code (:8004)", default="chat"),
    commands.Option("model", "GGUF file to serve (env <ROLE>_MODEL_PATH)", Path),
    commands.Option("host", "bind address (env <ROLE>_HOST)"),
    commands.Option("port", "port (env <ROLE>_PORT)", int),
    commands.Option("engine", "llama-cpp (in-process) or llama-server (env <ROLE>_ENGINE)"),
)


def serve(
    role: str = "chat",
    model: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    engine: str | None = None,
) -> None:
    """Serve a GGUF model with llama.cpp behind an OpenAI-compatible API."""
    from inference.app import create_app
    from inference.model import DEFAULT_MODEL_NAMES
    from inference.settings import InferenceSettings
    from p2.core.server import run_service

    settings = load_settings(
        partial(InferenceSettings.for_role, role),
        model_path=model,
        host=host,
        port=port,
        engine=engine,
    )
    if settings.model_path is not None and not settings.model_path.expanduser().is_file():
        raise SettingsError(f"model file not found: {settings.model_path}")
    what = settings.model_path or f"{DEFAULT_MODEL_NAMES[settings.role]} (default)"
    run_service(
        f"inference-{settings.role.value}",
        create_app(settings),
        host=settings.host,
        port=settings.port,
        banner=f"serving {what} on http://{settings.host}:{settings.port}/v1 (engine "
        f"{settings.engine.value}; GET /health turns 200 when the model is loaded)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m inference", serve, OPTIONS, argv)
