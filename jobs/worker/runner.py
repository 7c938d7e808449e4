"""Runs one job in a worker's pool child: claim it, load the model once, run, record.

The claim (``JobStore.claim``) decides whether this delivery runs at all, so
a message delivered twice runs once; the result, its files and the final state
are written in one transaction, only while the job is still this runner's.
Progress reports are the heartbeat (the beat file at once, the database every
``DB_BEAT`` seconds); when the database says the job is no longer ours
(cancelled, or taken over after we were presumed lost), the run stops.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from jobs.db import connect
from jobs.files import FileRecord, FileStore, file_refs
from jobs.journal import BoundJournal, JobJournal
from jobs.notify import Announcer
from jobs.registry import (
    InvalidInput,
    JobModel,
    ModelError,
    Progress,
    Registry,
    Result,
    RunningJob,
    UnknownModel,
)
from jobs.settings import JobsSettings
from jobs.states import Status
from jobs.store import Job, JobStore
from jobs.worker.beat import BeatFile

log = logging.getLogger("p2.jobs.worker")

DB_BEAT = 1.0
MAX_ERROR = 2000


class Abandoned(Exception):
    """The job is no longer this runner's (cancelled, or re-queued): stop working on it."""


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid``: with the pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(") ", 1)[-1].split()[19]


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


class JobRunner:
    """One per pool child: its database engine, its loaded models, its runner id."""

    def __init__(
        self,
        settings: JobsSettings,
        *,
        home: Path,
        registry: Registry,
        device: str,
        beat: BeatFile,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.device = device
        self.beat = beat
        self.me = runner_id()
        self.host = socket.gethostname()
        engine = connect(settings.database(home))
        self.store = JobStore(engine)
        self.files = FileStore(engine, settings.artifacts(home))
        self.journal = JobJournal(engine)
        self.home = home
        self.announcer = Announcer(settings.broker_url)
        self._models: dict[str, JobModel] = {}

    def alive(self, job: Job) -> bool:
        """Whether the runner holding ``job`` still lives: checked directly on this host,
        by its heartbeat elsewhere."""
        host, _, rest = (job.runner or "").partition(":")
        pid, _, start = rest.partition(":")
        if host == self.host and pid.isdigit():
            return process_start(int(pid)) == start
        beat = job.heartbeat_at or 0.0
        return time.time() - beat < self.settings.lost_after

    def run(self, job_id: str) -> None:
        job = self.store.claim(
            job_id, self.me, alive=self.alive, max_attempts=self.settings.max_attempts
        )
        if job is None:
            log.info("job %s: not run here (finished, cancelled or running elsewhere)", job_id)
            return
        self.beat.start(job.id)
        try:
            self._execute(job)
        finally:
            self.beat.clear()
            self.announcer.finished(job.id)

    def _execute(self, job: Job) -> None:
        try:
            model = self._model(job)
            model.attach(
                RunningJob(
                    job.id,
                    job.owner,
                    job.attempts,
                    self.home,
                    self.files.root,
                    BoundJournal(self.journal, job.id),
                )
            )
            prepared = model.preprocess(job.input, self._inputs(job), job.config)
            output = model.predict(prepared, self._progress(job))
            self._finish(job, model.postprocess(output))
        except Abandoned:
            log.info("job %s: no longer ours (cancelled or re-queued); stopped", job.id)
        except ModelError as exc:
            self._fail(job, exc.message, exc.code)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self._fail(job, f"{type(exc).__name__}: {exc}", "internal_error")

    def _model(self, job: Job) -> JobModel:
        """The job's model, loaded on this child's device the first time it is needed."""
        model = self._models.get(job.model)
        if model is None:
            try:
                cls = self.registry.find(job.task, job.model)
            except UnknownModel as exc:
                raise ModelError(exc.message, code="model_not_found") from None
            model = cls()
            started = time.perf_counter()
            model.load(self.device)
            log.info(
                "model %s loaded on %s in %.2fs",
                job.model,
                self.device,
                time.perf_counter() - started,
            )
            self._models[job.model] = model
            self.beat.touch()
        return model

    def _inputs(self, job: Job) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for param, file_id in file_refs(job.input):
            path = self.files.path(file_id)
            if self.files.get(file_id) is None or not path.exists():
                raise InvalidInput(f"the input file '{file_id}' no longer exists", param=param)
            paths[file_id] = path
        return paths

    def _progress(self, job: Job) -> Progress:
        last = time.monotonic()

        def progress(fraction: float) -> None:
            nonlocal last
            self.beat.touch()
            now = time.monotonic()
            if now - last >= DB_BEAT:
                last = now
                if not self.store.beat(job.id, self.me, min(1.0, max(0.0, float(fraction)))):
                    raise Abandoned(job.id)

        return progress

    def _finish(self, job: Job, result: Result) -> None:
        data = orjson.loads(orjson.dumps(result.data, option=orjson.OPT_SERIALIZE_NUMPY))
        records: list[FileRecord] = [
            self.files.write(
                a.data, owner=job.owner, filename=a.name, media_type=a.media_type, job_id=job.id
            )
            for a in result.artifacts
        ]
        values: dict[str, Any] = {"progress": 1.0, "result": data}
        encoded = orjson.dumps(data)
        if len(encoded) > self.settings.max_inline_bytes:  # too large for a row: a file
            stored = self.files.write(
                encoded,
                owner=job.owner,
                filename="result.json",
                media_type="application/json",
                job_id=job.id,
            )
            records.append(stored)
            values.update(result=None, result_file=stored.id)
        finished = self.store.move(
            job.id,
            Status.SUCCEEDED,
            expect=Status.RUNNING,
            held_by=self.me,
            detail="succeeded",
            also=lambda conn: self.files.insert(*records, conn=conn),
            **values,
        )
        if not finished:  # cancelled or taken over meanwhile: leave no trace
            self.files.discard(records)
            log.info("job %s: finished but no longer ours; result dropped", job.id)

    def _fail(self, job: Job, message: str, code: str) -> None:
        self.store.move(
            job.id,
            Status.FAILED,
            expect=Status.RUNNING,
            held_by=self.me,
            detail=f"failed: {code}",
            error_message=message[:MAX_ERROR],
            error_code=code,
        )


def device_for(setting: str, environ: Mapping[str, str]) -> str:
    """``auto``: cuda when ``CUDA_VISIBLE_DEVICES`` names a device, else cpu."""
    if setting != "auto":
        return setting
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return "cuda" if visible and visible != "-1" else "cpu"
