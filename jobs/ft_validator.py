"""Fine-tuning jobs' files are checked in the job API, off the request, before they queue.

A new job waits in ``validating_files`` while a thread reads its training (and
validation) file line by line: a bad file fails the job with the line that is
wrong (``invalid_training_file``, ``invalid_validation_file``) and no worker
ever sees it; a good one gets its ``auto`` hyperparameters resolved, moves to
``queued`` and is handed to the broker. Jobs left validating by an API that
stopped are picked up again by the periodic check.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from jobs.files import FileStore
from jobs.finetune import hyper
from jobs.finetune.bases import BASES
from jobs.finetune.data import DataError, Summary, check
from jobs.journal import JobJournal
from jobs.notify import Announcer
from jobs.queue import Dispatcher
from jobs.states import Status
from jobs.store import Job, JobStore

log = logging.getLogger("p2.jobs.validator")

FILES = (
    ("training_file_id", "training file", "invalid_training_file"),
    ("validation_file_id", "validation file", "invalid_validation_file"),
)


class Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Validator:
    def __init__(
        self,
        store: JobStore,
        files: FileStore,
        journal: JobJournal,
        dispatcher: Dispatcher,
        announcer: Announcer,
        *,
        recheck_after: float = 30.0,
        interval: float = 2.0,
        threads: int = 2,
    ) -> None:
        self.store = store
        self.files = files
        self.journal = journal
        self.dispatcher = dispatcher
        self.announcer = announcer
        self.recheck_after = recheck_after
        self.interval = interval
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ft-validate")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ft-validator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, job_id: str) -> None:
        """Validate the job's files in the background (once at a time per job)."""
        with self._lock:
            if job_id in self._busy or self._stop.is_set():
                return
            self._busy.add(job_id)
        self._pool.submit(self._validate_once, job_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for job_id in self.store.validating(time.time() - self.recheck_after):
                    self.submit(job_id)
            except SQLAlchemyError as exc:
                log.warning("validation sweep skipped, database unavailable: %s", exc)

    def _validate_once(self, job_id: str) -> None:
        try:
            self.validate(job_id)
        except SQLAlchemyError as exc:  # the periodic check tries again
            log.warning("job %s: validation interrupted: %s", job_id, exc)
        except Exception:
            log.exception("job %s: validation failed unexpectedly", job_id)
        finally:
            with self._lock:
                self._busy.discard(job_id)

    def validate(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or job.status is not Status.VALIDATING:
            return
        try:
            summaries = self._check(job)
        except Invalid as exc:
            if self.store.move(
                job.id,
                Status.FAILED,
                expect=Status.VALIDATING,
                detail=f"failed: {exc.code}",
                error_code=exc.code,
                error_message=exc.message,
            ):
                self.announcer.finished(job.id)
            return
        fmt = BASES[job.model].format
        resolved = hyper.resolve(job.config, fmt, summaries["training_file_id"].examples)
        message = ", ".join(
            f"{s.examples} {label.split()[0]} examples"
            for key, label, _ in FILES
            if (s := summaries.get(key)) is not None
        )
        counts = {key: s.examples for key, s in summaries.items()}
        self.journal.log(job.id, f"Files validated: {message}", data=counts | resolved)
        queued = self.store.move(
            job.id,
            Status.QUEUED,
            expect=Status.VALIDATING,
            detail="files validated",
            config=resolved,
        )
        if queued and self.dispatcher.send(job.id):  # else the sweeper sends it
            self.store.mark_dispatched(job.id)

    def _check(self, job: Job) -> dict[str, Summary]:
        fmt = BASES[job.model].format
        summaries: dict[str, Summary] = {}
        for key, label, code in FILES:
            file_id = job.input.get(key)
            if not file_id:
                continue
            path: Path = self.files.path(file_id)
            if self.files.get(file_id) is None or not path.is_file():
                raise Invalid(code, f"The {label} {file_id} no longer exists.")
            try:
                summaries[key] = check(path, fmt)
            except DataError as exc:
                expected = (
                    'chat-format JSONL ({"messages": [...]} per line)'
                    if fmt.value == "chat"
                    else 'JSONL pairs ({"query": ..., "positive": ...} per line)'
                )
                raise Invalid(
                    code, f"Invalid {label} {file_id}: {exc}. Expected {expected}."
                ) from None
        return summaries
