"""``python -m jobs``: the job API in the foreground."""

from __future__ import annotations

from collections.abc import Sequence

from p2.core import commands
from p2.core.settings import load_settings

OPTIONS = (
    commands.Option("host", "bind address (env JOBS_HOST)"),
    commands.Option("port", "port (env JOBS_PORT, 8005)", int),
)


def serve(host: str | None = None, port: int | None = None) -> None:
    """The job API: submit, watch, cancel jobs; files; Celery workers on Redis run them."""
    from kombu.utils.url import maybe_sanitize_url

    from jobs.app import create_app
    from jobs.settings import JobsSettings
    from p2.core.server import run_service

    settings = load_settings(JobsSettings.build, host=host, port=port)
    run_service(
        "jobs",
        create_app(settings),
        host=settings.host,
        port=settings.port,
        banner=f"job API on http://{settings.host}:{settings.port}/v1 (broker "
        f"{maybe_sanitize_url(settings.broker_url)}; "
        "GET /health turns 200 when the database is ready)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m jobs", serve, OPTIONS, argv)
