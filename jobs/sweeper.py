"""The job API's background sweep: no job is lost when a broker or a worker is.

Every ``JOBS_SWEEP_INTERVAL`` seconds it
- hands the broker the queued jobs it does not hold (it was down at submit, or
  the job came back from a lost worker);
- re-queues running jobs whose heartbeat is older than ``JOBS_LOST_AFTER`` (their
  worker died with the message unacknowledged; Redis would return it only after
  the visibility timeout), or fails them after ``JOBS_MAX_ATTEMPTS`` starts;
- re-sends queued jobs older than ``JOBS_REDISPATCH_AFTER`` while a worker has
  idled that long (a message lost with a dead worker's reservation);
- observes the durations of jobs that finished since the last sweep;
- forgets workers that have not reported for a day.
Sending a job twice is safe: a worker only runs a job it can claim.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from jobs.fleet import FORGET, FRESH, Fleet, WorkerState
from jobs.metrics import JobsMetrics
from jobs.queue import Dispatcher
from jobs.settings import JobsSettings
from jobs.store import JobStore

log = logging.getLogger("p2.jobs.sweeper")

SUBMIT_GRACE = 2.0  # a job this young may still be in its submit request's hands
SETTLE = 1.0


class Sweeper:
    def __init__(
        self,
        settings: JobsSettings,
        store: JobStore,
        fleet: Fleet,
        dispatcher: Dispatcher,
        metrics: JobsMetrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.dispatcher = dispatcher
        self.metrics = metrics
        self._watermark = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobs-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval):
            try:
                self.sweep()
            except SQLAlchemyError as exc:
                log.warning("sweep skipped, database unavailable: %s", exc)

    def sweep(self) -> None:
        now = time.time()
        self._requeue_lost(now)
        self._dispatch_pending(now)
        self._redispatch_stuck(now)
        self._observe_finished(now)
        self.fleet.forget(now - FORGET)

    def _requeue_lost(self, now: float) -> None:
        for job in self.store.silent_running(now - self.settings.lost_after):
            if self.store.requeue_lost(job, self.settings.max_attempts, dispatched=False):
                log.warning("job %s: worker %s silent, re-queued", job.id, job.runner)
                self.metrics.redispatched.labels("worker_lost").inc()

    def _dispatch_pending(self, now: float) -> None:
        for job_id in self.store.undispatched(now - SUBMIT_GRACE):
            if not self.dispatcher.send(job_id):
                return  # the broker is down: next sweep
            self.store.mark_dispatched(job_id)
            self.metrics.redispatched.labels("undispatched").inc()

    def _redispatch_stuck(self, now: float) -> None:
        wait = self.settings.redispatch_after
        idle = [
            w
            for w in self.fleet.all()
            if w.state is WorkerState.IDLE and w.up(now, FRESH) and now - w.since >= wait
        ]
        if not idle:
            return
        for job_id in self.store.dispatched_before(now - wait, limit=len(idle)):
            if not self.dispatcher.send(job_id):
                return
            self.store.mark_dispatched(job_id)
            log.warning("job %s queued for %.0fs while a worker idled: sent again", job_id, wait)
            self.metrics.redispatched.labels("idle_worker").inc()

    def _observe_finished(self, now: float) -> None:
        until = now - SETTLE  # a finish stamped earlier may commit a moment later
        for job in self.store.finished_between(self._watermark, until):
            self.metrics.finished(job)
        self._watermark = max(self._watermark, until)
