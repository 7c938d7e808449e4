"""Prometheus metrics of the job API, on its own registry.

Counts by task and status come from the database at scrape time (the database
is the truth, and workers may be on other machines); durations are observed by
the API's sweeper as jobs finish; queue depth is read from the broker.
Names follow ``p2_jobs_<what>_<unit>``; counters get ``_total`` on the wire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobs.fleet import WorkerRow
from jobs.states import Status
from jobs.store import Job

log = logging.getLogger("p2.jobs.metrics")

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


@dataclass
class Snapshot:
    """What the database and the broker say at one scrape (None: could not be read)."""

    counts: Mapping[tuple[str, str], int] | None = None
    workers: list[WorkerRow] = field(default_factory=list)
    queue_depth: int | None = None


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], Snapshot], fresh: float) -> None:
        self._read = read
        self._fresh = fresh

    def collect(self) -> Iterator[Metric]:
        snap = self._read()
        if snap.counts is not None:
            jobs = GaugeMetricFamily(
                "p2_jobs_jobs",
                "Jobs in the database by task and status.",
                labels=["task", "status"],
            )
            for task in sorted({task for task, _ in snap.counts}):
                for status in Status:
                    jobs.add_metric([task, status.value], snap.counts.get((task, status.value), 0))
            yield jobs
        broker = GaugeMetricFamily("p2_jobs_broker_up", "1 when the broker (Redis) answers.")
        broker.add_metric([], 0 if snap.queue_depth is None else 1)
        yield broker
        if snap.queue_depth is not None:
            depth = GaugeMetricFamily(
                "p2_jobs_queue_depth", "Job messages waiting in the broker for a worker."
            )
            depth.add_metric([], snap.queue_depth)
            yield depth
        now = time.time()
        up = GaugeMetricFamily(
            "p2_jobs_worker_up",
            "1 while a worker reports itself fresh and not stalled (from its heartbeats).",
            labels=["worker"],
        )
        for worker in snap.workers:
            up.add_metric([worker.name], 1 if worker.up(now, self._fresh) else 0)
        yield up


class JobsMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "p2_jobs_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.submitted = Counter(
            "p2_jobs_submitted",
            "Jobs created (not counting idempotent replays).",
            ["task"],
            registry=r,
        )
        self.redispatched = Counter(
            "p2_jobs_redispatched",
            "Jobs handed to the broker again: undispatched (broker was down), worker_lost, "
            "idle_worker (a queued job no worker took while one idled).",
            ["reason"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "p2_jobs_run_seconds",
            "Time from a job's (last) start to its end, by task and final status.",
            ["task", "status"],
            buckets=_SECONDS,
            registry=r,
        )
        self.turnaround_seconds = Histogram(
            "p2_jobs_turnaround_seconds",
            "Time from submit to a job's end, by task and final status.",
            ["task", "status"],
            buckets=_SECONDS,
            registry=r,
        )

    def watch(self, read: Callable[[], Snapshot], fresh: float) -> None:
        """Report the database's and broker's state at each scrape."""
        self.registry.register(_StateCollector(read, fresh))

    def finished(self, job: Job) -> None:
        if job.finished_at is None:
            return
        labels = (job.task, job.status.value)
        if job.started_at is not None:
            self.run_seconds.labels(*labels).observe(max(0.0, job.finished_at - job.started_at))
        self.turnaround_seconds.labels(*labels).observe(max(0.0, job.finished_at - job.created_at))
