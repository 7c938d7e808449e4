"""The fine-tuning API apart from HTTP: create, read, list, cancel, events, checkpoints,
and the fine-tuned models.

Scopes are the job API's: a user key sees and cancels its own jobs (another
user's is a 404, as if it did not exist) and lists its own models; an admin key
sees and cancels all, and deletes models (``DELETE /v1/models/{id}`` needs admin
scope, enforced by the key check before this code runs).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from jobs.files import PURPOSES
from jobs.finetune.bases import BASES, TASK
from jobs.finetune.names import ModelName
from jobs.ft_models import FineTunedModels
from jobs.ft_protocol import (
    FineTuningRequest,
    checkpoint_object,
    job_object,
    log_event,
    model_object,
    page,
    transition_event,
)
from jobs.ft_validator import Validator
from jobs.journal import JobJournal
from jobs.service import MAX_WAIT, Conflict, JobService, Who
from jobs.states import Status
from jobs.store import IdempotencyConflict, Job
from p2.core.errors import BadRequest, NotFound

FINE_TUNE_PURPOSE = PURPOSES[2]  # "fine-tune"
LIMITS = {"n_epochs": (1, 100), "batch_size": (1, 1024), "learning_rate_multiplier": (1e-4, 100)}


def job_not_found(job_id: str) -> NotFound:
    return NotFound(
        f"No fine-tuning job with id '{job_id}'.", param="fine_tuning_job_id", code="job_not_found"
    )


def model_not_found(name: str) -> NotFound:
    return NotFound(
        f"The model '{name}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class FineTuningService:
    def __init__(
        self,
        jobs: JobService,
        journal: JobJournal,
        validator: Validator,
        models: FineTunedModels,
    ) -> None:
        self.jobs = jobs
        self.journal = journal
        self.validator = validator
        self.models = models

    # -- create ----------------------------------------------------------------------------

    def _check(self, who: Who, request: FineTuningRequest) -> dict[str, Any]:
        """Refuse what could never run; the hyperparameters as given."""
        if request.model not in BASES:
            raise BadRequest(
                f"The model '{request.model}' cannot be fine-tuned here. "
                f"Known models: {', '.join(BASES)}.",
                param="model",
                code="model_not_found",
            )
        if request.method is not None and request.method.type != "supervised":
            raise BadRequest(
                f"The method '{request.method.type}' is not supported; use 'supervised'.",
                param="method.type",
                code="unsupported_method",
            )
        if request.integrations:
            raise BadRequest(
                "Integrations are not supported: set MLFLOW_TRACKING_URI on the workers "
                "to track runs in MLflow.",
                param="integrations",
                code="unsupported_integration",
            )
        given = request.given_hyperparameters()
        for key, value in given.items():
            low, high = LIMITS[key]
            if value != "auto" and not low <= value <= high:
                raise BadRequest(
                    f"hyperparameters.{key} must be 'auto' or between {low} and {high}.",
                    param=f"hyperparameters.{key}",
                )
        for param in ("training_file", "validation_file"):
            file_id = getattr(request, param)
            if file_id is None:
                continue
            record = self.jobs.files.get(file_id)
            if record is None or not who.sees(record.owner):
                raise BadRequest(
                    f"No file with id '{file_id}'.", param=param, code="file_not_found"
                )
            if record.purpose != FINE_TUNE_PURPOSE:
                raise BadRequest(
                    f"The file '{file_id}' was uploaded with purpose '{record.purpose}'; "
                    f"files for fine-tuning need purpose '{FINE_TUNE_PURPOSE}'.",
                    param=param,
                    code="invalid_file_purpose",
                )
        return given

    def _submit(self, who: Who, request: FineTuningRequest, key: str | None) -> tuple[Job, bool]:
        given = self._check(who, request)
        digest = hashlib.sha256(
            orjson.dumps(request.model_dump(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        input: dict[str, Any] = {
            "training_file_id": request.training_file,
            "seed": request.seed if request.seed is not None else secrets.randbelow(2**31),
            "suffix": request.suffix,
            "metadata": request.metadata,
        }
        if request.validation_file is not None:
            input["validation_file_id"] = request.validation_file
        try:
            job, created = self.jobs.store.submit(
                owner=who.owner,
                task=TASK,
                model=request.model,
                input=input,
                config=given,
                idempotency_key=key,
                request_hash=digest if key is not None else None,
                status=Status.VALIDATING,
            )
        except IdempotencyConflict as exc:
            raise Conflict(
                f"The Idempotency-Key '{exc.key}' was already used for a different request; "
                "use a new key for a new job.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            ) from None
        if created:
            self.journal.log(job.id, f"Created fine-tuning job: {job.id}")
            files = [request.training_file, request.validation_file]
            self.journal.log(
                job.id, f"Validating files: {', '.join(f for f in files if f is not None)}"
            )
            self.jobs.metrics.submitted.labels(TASK).inc()
            self.validator.submit(job.id)
        return job, created

    async def create(
        self, who: Who, request: FineTuningRequest, key: str | None
    ) -> tuple[dict[str, Any], bool]:
        self.jobs.ready()
        job, created = await run_in_threadpool(self._submit, who, request, key)
        return await run_in_threadpool(self.describe, job), created

    # -- read ------------------------------------------------------------------------------

    def visible(self, who: Who, job_id: str) -> Job:
        job = self.jobs.store.get(job_id)
        if job is None or job.task != TASK or not who.sees(job.owner):
            raise job_not_found(job_id)
        return job

    def describe(self, job: Job) -> dict[str, Any]:
        files = [f.id for f in self.jobs.files.of_job(job.id)]
        position = self.jobs.store.queue_position(job) if job.status is Status.QUEUED else None
        return job_object(job, result_files=files, queue_position=position)

    async def get(self, who: Who, job_id: str, wait: float | None) -> dict[str, Any]:
        """The job; with ``wait`` (a P2 extra), once it is final or ``wait`` seconds passed."""
        self.jobs.ready()
        job = await run_in_threadpool(self.visible, who, job_id)
        if wait and not job.terminal:
            job = await self.jobs.finished(job.id, min(wait, MAX_WAIT))
        return await run_in_threadpool(self.describe, job)

    def list(self, who: Who, after: str | None, limit: int) -> dict[str, Any]:
        self.jobs.ready()
        found = self.jobs.store.page(owner=who.only, task=TASK, after=after, limit=limit)
        data = [self.describe(job) for job in found.items]
        return {
            "object": "list",
            "data": data,
            "has_more": found.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def cancel(self, who: Who, job_id: str) -> dict[str, Any]:
        self.jobs.ready()
        self.visible(who, job_id)
        self.jobs.cancel(who, job_id)
        return self.describe(self.visible(who, job_id))

    def events(self, who: Who, job_id: str, after: str | None, limit: int) -> dict[str, Any]:
        """State changes and the job's log, newest first, in OpenAI's cursor pages."""
        self.jobs.ready()
        job = self.visible(who, job_id)
        items = [transition_event(row, job) for row in self.jobs.store.events(job.id)]
        items += [log_event(entry) for entry in self.journal.entries(job.id)]
        items.sort(key=lambda item: (item["_at"], item["id"]), reverse=True)
        return page(items, after, limit)

    def checkpoints(self, who: Who, job_id: str, after: str | None, limit: int) -> dict[str, Any]:
        self.jobs.ready()
        job = self.visible(who, job_id)
        name = str(ModelName(job.model, job.input.get("suffix") or "", job.id))
        items = [checkpoint_object(c, name) for c in reversed(self.journal.checkpoints(job.id))]
        return page(items, after, limit)

    # -- fine-tuned models -----------------------------------------------------------------

    def list_models(self, who: Who) -> dict[str, Any]:
        self.jobs.ready()
        data = [
            model_object(name, job.finished_at or job.created_at, job.owner)
            for name, job in self.models.all(who.only)
        ]
        return {"object": "list", "data": data}

    def _model(self, who: Who, name: str) -> Job:
        job = self.models.find(name)
        if job is None or not who.sees(job.owner):
            raise model_not_found(name)
        return job

    def get_model(self, who: Who, name: str) -> dict[str, Any]:
        self.jobs.ready()
        job = self._model(who, name)
        return model_object(name, job.finished_at or job.created_at, job.owner)

    def delete_model(self, who: Who, name: str) -> dict[str, Any]:
        self.jobs.ready()
        job = self._model(who, name)
        if not self.models.delete(name, job):
            raise model_not_found(name)
        return {"id": name, "object": "model", "deleted": True}
