"""Real peers for the job platform's tests: Redis, PostgreSQL, the job API and workers
as child processes, started with the product's own commands and process helpers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import redis

from jobs.redis_server import redis_argv
from jobs.settings import RedisSettings
from p2.core.process import ProcessError, free_port, spawn, terminate, wait_healthy
from tests.docker.tools import require_tool, unavailable

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class RedisServer:
    """``redis-server`` as ``p2 up`` runs it (AOF on), on a free port in its own folder."""

    def __init__(self, folder: Path) -> None:
        require_tool("redis-server", "redis-server")
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        argv = redis_argv(RedisSettings.build(port=self.port), self.folder)
        self.proc = spawn(argv, log_path=self.folder / "redis.log")
        wait_for(self._pong, 20, "redis to answer PING")

    def _pong(self) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), self.client() as client:
            return bool(client.ping())
        return False

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


@dataclass
class JobStack:
    """A job API and workers (``python -m jobs``, ``python -m jobs.worker``) sharing
    a P2_HOME, a Redis and a database."""

    home: Path
    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def _start(self, argv: list[str], port: int, name: str, env: Mapping[str, str]) -> Proc:
        log = self.home / "logs" / f"{name}.log"
        proc = spawn(argv, env={**self.env, **env}, log_path=log)
        running = Proc(proc, port, log)
        self.started.append(running)
        try:
            wait_healthy(f"{running.url}/health", timeout=60, proc=proc)
        except ProcessError:
            print(running.tail())
            raise
        return running

    def api(self, **env: str) -> Proc:
        port = free_port()
        return self._start([sys.executable, "-m", "jobs", "--port", str(port)], port, "api", env)

    def worker(self, name: str = "w", **env: str) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "jobs.worker", "--port", str(port), "--name", f"{name}@test"]
        return self._start(argv, port, f"worker-{name}-{port}", env)

    def stop(self, proc: Proc) -> None:
        terminate(proc.proc, grace=10)

    def close(self) -> None:
        for proc in reversed(self.started):
            terminate(proc.proc, grace=10)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (a worker's pool child)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def runner_pid(runner: str | None) -> int:
    """The pid in a job's runner id (``host:pid:start``)."""
    assert runner, "the job has no runner"
    return int(runner.split(":")[1])


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class Postgres:
    url: str
    admin: Callable[[str], None]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (Debian's initdb/pg_ctl), as the postgres user when root."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins:
        unavailable("PostgreSQL not found: apt-get install -y postgresql")
    bindir = bins[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="p2-pg-"))
    folder.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("runuser not found (util-linux)")
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "p2", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = folder / "pg.log"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    base = f"postgresql://p2@127.0.0.1:{port}"

    def admin(sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(sql.encode())

    try:
        yield Postgres(base, admin)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def http(base: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)
