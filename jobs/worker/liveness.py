"""A worker's liveness, served on ``/health`` and reported to the workers table.

``GET /health`` (127.0.0.1:``WORKER_PORT``) answers 200 while the worker idles
or runs a job whose heartbeat is fresh, and 503 once the heartbeat is older
than ``WORKER_STALL_TIMEOUT``: the supervisor (or autoheal in compose) restarts
a wedged worker and leaves a busy one alone -- unlike ``celery inspect ping``,
which a busy worker may not answer. The same judgement goes to the database
every ``WORKER_HEARTBEAT_INTERVAL`` seconds for the job API's metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from sqlalchemy.exc import SQLAlchemyError

from jobs.fleet import Fleet, WorkerState
from jobs.worker.beat import BeatFile, Liveness
from p2.core.errors import error_body

log = logging.getLogger("p2.jobs.worker")


def health_body(live: Liveness) -> tuple[int, bytes]:
    if live.state is WorkerState.STALLED:
        body = error_body(
            f"Job {live.job_id} has not reported progress for {live.silent_for:.0f}s: "
            "the worker is wedged.",
            "service_unavailable_error",
            code="stalled",
        )
        return 503, orjson.dumps(body)
    return 200, orjson.dumps({"status": "ok", "state": live.state.value, "job": live.job_id})


class LivenessServer:
    def __init__(self, host: str, port: int, beat: BeatFile, stall_timeout: float) -> None:
        def judge() -> Liveness:
            return beat.judge(stall_timeout)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/health":
                    status, body = 404, orjson.dumps(error_body("Not found.", "not_found_error"))
                else:
                    status, body = health_body(judge())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="worker-liveness", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def close_inherited(self) -> None:
        """In a pool child: drop the copy of the listening socket the fork left it."""
        self.server.socket.close()


class Reporter:
    """Writes this worker's state to the workers table every ``interval`` seconds."""

    def __init__(
        self,
        fleet: Fleet,
        name: str,
        beat: BeatFile,
        *,
        stall_timeout: float,
        interval: float,
        device: str,
    ) -> None:
        self.fleet = fleet
        self.name = name
        self.beat = beat
        self.stall_timeout = stall_timeout
        self.interval = interval
        self.device = device
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._report(Liveness(WorkerState.STOPPED))

    def _run(self) -> None:
        while True:
            self._report(self.beat.judge(self.stall_timeout))
            if self._stop.wait(self.interval):
                return

    def _report(self, live: Liveness) -> None:
        try:
            self.fleet.report(
                self.name,
                live.state,
                job_id=live.job_id,
                device=self.device,
                pid=os.getpid(),
                started_at=self.started_at,
            )
        except SQLAlchemyError as exc:
            log.warning("could not report to the workers table: %s", exc)
