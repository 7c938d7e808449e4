"""``python -m jobs.worker``: one job worker in the foreground."""

from __future__ import annotations

from collections.abc import Sequence

from p2.core import commands
from p2.core.settings import load_settings

OPTIONS = (
    commands.Option("host", "liveness bind address (env WORKER_HOST)"),
    commands.Option("port", "liveness port (env WORKER_PORT, 8010)", int),
    commands.Option("name", "worker name (env WORKER_NAME; default <port>@<hostname>)"),
)


def serve(host: str | None = None, port: int | None = None, name: str | None = None) -> None:
    """A job worker: Celery prefork, one child, models from the registry, liveness /health."""
    from jobs.settings import JobsSettings, WorkerSettings
    from jobs.worker.main import run_worker
    from p2.core.logging import configure_logging
    from p2.core.settings import CoreSettings

    worker = load_settings(WorkerSettings.build, host=host, port=port, name=name)
    jobs = load_settings(JobsSettings.build)
    core = CoreSettings()
    configure_logging(core.log_level, "jobs-worker")
    print(f"P2 jobs-worker: {worker.worker_name}, liveness on :{worker.port}", flush=True)
    raise SystemExit(run_worker(worker, jobs, core.home, core.log_level))


def main(argv: Sequence[str] | None = None) -> None:
    commands.main("python -m jobs.worker", serve, OPTIONS, argv)
