"""A worker process: Celery's prefork worker with one child, plus its liveness.

Measured here (docs/jobs.md): a solo-pool worker killed mid-task gets its task
back only after kombu's ~100 s re-check (or the visibility timeout); prefork
with late acks and ``reject_on_worker_lost`` re-runs it within a second of the
child's death, and ``revoke(terminate=True)`` can kill the child that runs a
cancelled job. The child keeps its loaded models between jobs
(``WORKER_MAX_TASKS_PER_CHILD=0``); a model that needs processes of its own
starts them as subprocesses (prefork children cannot use multiprocessing).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery.signals import worker_process_init

from jobs.db import connect, create_schema
from jobs.fleet import Fleet
from jobs.queue import RUN_JOB, celery_app
from jobs.registry import discover
from jobs.settings import JobsSettings, WorkerSettings
from jobs.worker.beat import BeatFile
from jobs.worker.liveness import LivenessServer, Reporter
from jobs.worker.runner import JobRunner, device_for

log = logging.getLogger("p2.jobs.worker")


def beat_path(home: Path, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return home / "run" / "workers" / f"{safe}.beat"


def run_worker(worker: WorkerSettings, jobs: JobsSettings, home: Path, log_level: str) -> int:
    """Serve jobs until stopped; the exit code."""
    registry = discover(test_models=jobs.test_models)
    device = device_for(worker.device, os.environ)
    name = worker.worker_name
    beat = BeatFile(beat_path(home, name))
    engine = connect(jobs.database(home))
    create_schema(engine)
    app = celery_app(jobs.broker_url, queue=jobs.queue, visibility_timeout=jobs.visibility_timeout)
    runners: dict[int, JobRunner] = {}

    @app.task(name=RUN_JOB)
    def run_job(job_id: str) -> None:
        runner = runners.get(os.getpid())
        if runner is None:  # the first job of this child: its own engine, its own models
            runner = JobRunner(jobs, home=home, registry=registry, device=device, beat=beat)
            runners.clear()
            runners[os.getpid()] = runner
        runner.run(job_id)

    liveness = LivenessServer(worker.host, worker.port, beat, worker.stall_timeout)

    def in_child(**_: Any) -> None:
        liveness.close_inherited()
        engine.dispose(close=False)  # the parent's connections stay the parent's

    worker_process_init.connect(in_child, weak=False)
    reporter = Reporter(
        Fleet(engine),
        name,
        beat,
        stall_timeout=worker.stall_timeout,
        interval=worker.heartbeat_interval,
        device=device,
    )
    liveness.start()
    reporter.start()
    log.info(
        "worker %s on %s (CUDA_VISIBLE_DEVICES=%s): models %s; liveness on http://%s:%d/health",
        name,
        device,
        os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        ", ".join(registry.models()) or "none",
        worker.host,
        worker.port,
    )
    celery_worker = app.Worker(
        hostname=name,
        pool_cls="prefork",
        concurrency=1,
        prefetch_multiplier=1,
        max_tasks_per_child=worker.max_tasks_per_child or None,
        queues=[jobs.queue],
        loglevel=log_level.upper(),
        task_events=worker.events,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=not worker.events,
        optimization="fair",
    )
    try:
        celery_worker.start()
    finally:
        reporter.stop()
        liveness.stop()
        engine.dispose()
    return int(celery_worker.exitcode or 0)
