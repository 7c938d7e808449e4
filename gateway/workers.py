"""``GATEWAY_WORKERS=N``: N gateway processes behind one port.

One process serves 5-6k requests/s on a core; more cores need more
processes. The supervisor binds the port once and starts N workers
(``python -m gateway`` with the listening socket inherited), which accept on
it in turn. It restarts a worker that dies (unless it fails at start, which
would only repeat), and stops them all on SIGTERM or SIGINT.

Metrics add up across workers: every worker writes its values to files in one
directory per run (``PROMETHEUS_MULTIPROC_DIR``, see ``gateway.metrics``), and
any worker's ``/metrics`` sums all of them, a dead worker's included, so
counters never go backwards. Cooldowns are per worker unless ``REDIS_URL``
shares them (``gateway.cooldowns``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from gateway.metrics import MULTIPROC_ENV
from gateway.settings import GatewaySettings
from p2.core.keys import Keyring
from p2.core.logging import configure_logging
from p2.core.server import check_exposure, server_config
from p2.core.settings import CoreSettings, SettingsError

log = logging.getLogger("p2.gateway.workers")

WORKER_FD = "P2_GATEWAY_WORKER_FD"  # set by the supervisor for its workers only
EARLY_EXIT = 5.0  # a worker that fails (not killed) sooner after its start is not restarted


def worker_fd() -> int | None:
    """The inherited listening socket, when this process is one of the workers."""
    value = os.environ.get(WORKER_FD)
    return int(value) if value else None


def serve_worker(app: ASGIApp, fd: int, settings: GatewaySettings) -> None:
    """Serve ``app`` on the supervisor's listening socket."""
    core = CoreSettings()
    configure_logging(core.log_level, "gateway")
    sock = socket.socket(fileno=fd)
    config = server_config(app, host=settings.host, port=settings.port, log_level=core.log_level)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """The workers' parent: binds the port, starts and restarts them."""

    def __init__(self, settings: GatewaySettings, metrics_dir: str) -> None:
        self.settings = settings
        self.sock = socket.create_server(
            (settings.host, settings.port), backlog=2048, reuse_port=False
        )
        self.sock.set_inheritable(True)
        self.env = {
            **os.environ,
            WORKER_FD: str(self.sock.fileno()),
            MULTIPROC_ENV: metrics_dir,
        }
        self.stopping = False

    def start(self) -> tuple[subprocess.Popen[bytes], float]:
        settings = self.settings
        command = [sys.executable, "-m", "gateway", "--config", str(settings.config_path())]
        command += ["--host", settings.host, "--port", str(settings.port)]
        proc = subprocess.Popen(command, env=self.env, pass_fds=(self.sock.fileno(),))
        return proc, time.monotonic()

    def stop(self, signum: int, _: FrameType | None) -> None:
        self.stopping = True

    def run(self, count: int) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        workers = [self.start() for _ in range(count)]
        code = 0
        while not self.stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(workers):
                status = proc.poll()
                if status is None:
                    continue
                if status > 0 and time.monotonic() - started < EARLY_EXIT:
                    log.error("gateway worker %d exited at start (%d); stopping", proc.pid, status)
                    self.stopping, code = True, status or 1
                    break
                log.warning("gateway worker %d exited (%d); starting another", proc.pid, status)
                workers[i] = self.start()
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.sock.close()
        return code


def supervise(settings: GatewaySettings, keyring: Keyring, banner: str) -> None:
    """Run ``settings.workers`` workers until stopped; exit with a worker's failure."""
    core = CoreSettings()
    configure_logging(core.log_level, "gateway")
    warning = check_exposure("gateway", settings.host, keyring, core.allow_open)
    try:
        with tempfile.TemporaryDirectory(prefix="p2-gateway-metrics-") as metrics_dir:
            supervisor = Supervisor(settings, metrics_dir)
            print(f"P2 gateway: {banner} ({settings.workers} workers)", flush=True)
            if warning:
                print(f"P2 gateway: warning: {warning}", flush=True)
            code = supervisor.run(settings.workers)
    except OSError as exc:
        raise SettingsError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
    if code:
        sys.exit(code)
