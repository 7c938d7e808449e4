"""What the job API does, apart from HTTP: submit, read, wait, cancel, results.

Callers see only their own jobs and files (another user's job is a 404, as if
it did not exist); admin keys, and everyone when no key is configured, see all.
Database calls block, so the async entry points run them in worker threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from jobs.files import FileRecord, FileStore, file_refs
from jobs.metrics import JobsMetrics
from jobs.notify import Announcer, Waiters
from jobs.protocol import JobRequest, job_object, list_object, result_object
from jobs.queue import Dispatcher
from jobs.registry import InvalidInput, Registry, UnknownModel
from jobs.settings import JobsSettings
from jobs.states import Status
from jobs.store import IdempotencyConflict, Job, JobStore
from p2.core.errors import APIError, BadRequest, NotFound, PayloadTooLarge
from p2.core.health import Readiness
from p2.core.keys import Access, Caller
from p2.core.openai import not_ready

ANONYMOUS = "anonymous"
TASK_ENDPOINTS = {"fine_tuning": "POST /v1/fine_tuning/jobs"}
MAX_WAIT = 60.0


class Conflict(APIError):
    status_code = 409
    error_type = "invalid_request_error"


@dataclass(frozen=True)
class Who:
    """The caller as the job API sees it: whose jobs they own and whether they see all."""

    owner: str
    admin: bool

    @classmethod
    def of(cls, caller: Caller | None) -> Who:
        if caller is None:  # no keys configured: open, loopback-only mode
            return cls(ANONYMOUS, admin=True)
        return cls(caller.key_id, admin=caller.access >= Access.ADMIN)

    def sees(self, owner: str) -> bool:
        return self.admin or owner == self.owner

    @property
    def only(self) -> str | None:
        """The owner to filter lists by (None: everyone's)."""
        return None if self.admin else self.owner


def job_not_found(job_id: str) -> NotFound:
    return NotFound(f"No job with id '{job_id}'.", param="job_id", code="job_not_found")


class JobService:
    def __init__(
        self,
        settings: JobsSettings,
        *,
        store: JobStore,
        files: FileStore,
        dispatcher: Dispatcher,
        waiters: Waiters,
        announcer: Announcer,
        registry: Registry,
        metrics: JobsMetrics,
        readiness: Readiness,
    ) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.dispatcher = dispatcher
        self.waiters = waiters
        self.announcer = announcer
        self.registry = registry
        self.metrics = metrics
        self.readiness = readiness

    def ready(self) -> None:
        if not self.readiness.ready:
            raise not_ready(self.readiness.detail)

    # -- submit ---------------------------------------------------------------------------

    def check(self, who: Who, request: JobRequest) -> None:
        """Refuse what no worker could run: unknown model, bad input, someone else's file."""
        try:
            model = self.registry.find(request.task, request.model)
            if not model.direct:
                raise BadRequest(
                    f"'{request.task}' jobs are created with their own endpoint "
                    f"({TASK_ENDPOINTS.get(request.task, 'see docs/jobs.md')}), not POST /v1/jobs.",
                    param="task",
                    code="invalid_task",
                )
            model.validate(request.input, request.config)
        except UnknownModel as exc:
            raise BadRequest(exc.message, param=exc.param, code="model_not_found") from None
        except InvalidInput as exc:
            raise BadRequest(exc.message, param=exc.param, code=exc.code) from None
        size = len(orjson.dumps(request.input))
        if size > self.settings.max_inline_bytes:
            raise PayloadTooLarge(
                f"The job's input is {size} bytes; above {self.settings.max_inline_bytes} bytes, "
                "upload the data with POST /v1/files and name it in the input as a file_id.",
                param="input",
                code="input_too_large",
            )
        for param, file_id in file_refs(request.input):
            record = self.files.get(file_id)
            if record is None or not who.sees(record.owner):
                raise BadRequest(
                    f"No file with id '{file_id}'.", param=param, code="file_not_found"
                )

    async def submit(
        self, who: Who, request: JobRequest, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """The job (and whether it is new); a replayed key returns the first job."""
        self.ready()
        await run_in_threadpool(self.check, who, request)
        try:
            job, created = await run_in_threadpool(
                lambda: self.store.submit(
                    owner=who.owner,
                    task=request.task,
                    model=request.model,
                    input=request.input,
                    config=request.config,
                    idempotency_key=idempotency_key,
                    request_hash=request.digest() if idempotency_key is not None else None,
                )
            )
        except IdempotencyConflict as exc:
            raise Conflict(
                f"The Idempotency-Key '{exc.key}' was already used for a different request; "
                "use a new key for a new job.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            ) from None
        if created:
            self.metrics.submitted.labels(job.task).inc()
            if await run_in_threadpool(self.dispatcher.send, job.id):
                await run_in_threadpool(self.store.mark_dispatched, job.id)
        return await run_in_threadpool(self.describe, job), created

    # -- read -----------------------------------------------------------------------------

    def visible(self, who: Who, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None or not who.sees(job.owner):
            raise job_not_found(job_id)
        return job

    def describe(self, job: Job) -> dict[str, Any]:
        position = self.store.queue_position(job) if job.status is Status.QUEUED else None
        return job_object(job, queue_position=position)

    async def job(self, who: Who, job_id: str, wait: float | None = None) -> dict[str, Any]:
        """The job; with ``wait``, once it has finished or ``wait`` seconds passed."""
        self.ready()
        job = await run_in_threadpool(self.visible, who, job_id)
        if wait and not job.terminal:
            job = await self.finished(job.id, min(wait, MAX_WAIT))
        return await run_in_threadpool(self.describe, job)

    async def finished(self, job_id: str, within: float) -> Job:
        """The job once final (woken by workers' notices), or as it is after ``within`` s."""
        latest: list[Job] = []

        async def done() -> bool:
            job = await run_in_threadpool(self.store.get, job_id)
            assert job is not None
            latest[:] = [job]
            return job.terminal

        await self.waiters.wait(job_id, within, done)
        return latest[0]

    async def list(
        self, who: Who, *, status: Status | None, task: str | None, after: str | None, limit: int
    ) -> dict[str, Any]:
        self.ready()

        def read() -> dict[str, Any]:
            page = self.store.page(
                owner=who.only, status=status, task=task, after=after, limit=limit
            )
            return list_object([self.describe(j) for j in page.items], page.has_more)

        return await run_in_threadpool(read)

    def events(self, who: Who, job_id: str) -> dict[str, Any]:
        self.ready()
        self.visible(who, job_id)
        data = [
            {
                "object": "job.event",
                "id": f"event-{row['id']}",
                "created_at": int(row["at"]),
                "from": row["source"],
                "to": row["target"],
                "message": row["detail"],
            }
            for row in self.store.events(job_id)
        ]
        return list_object(data, False)

    # -- cancel and result -------------------------------------------------------------------

    def cancel(self, who: Who, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; a running one's worker child is killed."""
        self.ready()
        job = self.visible(who, job_id)
        while not job.terminal:
            if job.status is Status.QUEUED:
                if self.store.move(
                    job.id, Status.CANCELLED, expect=Status.QUEUED, detail="cancelled"
                ):
                    self.dispatcher.revoke(job.id, terminate=False)
                    break
            elif self.store.move(
                job.id, Status.CANCELLED, expect=job.status, held_by=job.runner, detail="cancelled"
            ):
                self.dispatcher.revoke(job.id, terminate=True)
                break
            job = self.visible(who, job_id)  # it moved meanwhile: look again
        else:
            raise Conflict(
                f"The job has already {job.status.value}; only queued or running jobs can be "
                "cancelled.",
                param="job_id",
                code="job_not_cancellable",
            )
        self.announcer.finished(job.id)
        return self.describe(self.visible(who, job_id))

    def result(self, who: Who, job_id: str) -> dict[str, Any]:
        self.ready()
        job = self.visible(who, job_id)
        if job.status is not Status.SUCCEEDED:
            raise Conflict(
                f"The job is {job.status.value}; a job has a result once it has succeeded.",
                param="job_id",
                code="job_not_succeeded",
            )
        return self.result_of(job)

    def result_of(self, job: Job) -> dict[str, Any]:
        files: list[FileRecord] = self.files.of_job(job.id)
        data = job.result or {}
        if job.result_file is not None:  # too large for the row: stored as a file
            data = json.loads(self.files.path(job.result_file).read_bytes())
            files = [f for f in files if f.id != job.result_file]
        return result_object(job, data, files)
