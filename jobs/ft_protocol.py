"""OpenAI's fine-tuning API shapes: the create body, and the job, event, checkpoint and
model objects the official SDK reads (``client.fine_tuning.jobs``, ``client.models``).

A fine-tuning job is a job of task ``fine_tuning`` on the job platform: its
``input`` holds the files, suffix, seed and metadata, its ``config`` the
hyperparameters (as given until its files are validated, concrete after).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.finetune.names import SUFFIX
from jobs.journal import Checkpoint, LogEntry
from jobs.states import Status
from jobs.store import Job

# A failed job's error code says which file was wrong: OpenAI's error.param.
ERROR_PARAMS = {
    "invalid_training_file": "training_file",
    "invalid_validation_file": "validation_file",
}

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | int | None = Field(default=None)
    batch_size: Auto | int | None = Field(default=None)
    learning_rate_multiplier: Auto | float | None = Field(default=None)

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningRequest(BaseModel):
    """``POST /v1/fine_tuning/jobs``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    training_file: str = Field(min_length=1, max_length=64)
    validation_file: str | None = Field(default=None, min_length=1, max_length=64)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(default=None, pattern=SUFFIX.pattern)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    integrations: list[dict[str, Any]] | None = None

    def given_hyperparameters(self) -> dict[str, Any]:
        """``method.supervised.hyperparameters`` over the (deprecated) top-level ones."""
        given = self.hyperparameters.given() if self.hyperparameters else {}
        if self.method is not None and self.method.supervised is not None:
            nested = self.method.supervised.hyperparameters
            if nested is not None:
                given.update(nested.given())
        return given


def _stamp(value: float | None) -> int | None:
    return int(value) if value is not None else None


def job_object(
    job: Job, *, result_files: list[str], queue_position: int | None = None
) -> dict[str, Any]:
    """OpenAI's ``fine_tuning.job`` (plus P2's ``progress`` and ``queue_position``)."""
    result = job.result or {}
    error = None
    if job.status is Status.FAILED:
        error = {
            "code": job.error_code or "internal_error",
            "message": job.error_message or "The job failed.",
            "param": ERROR_PARAMS.get(job.error_code or ""),
        }
    hyper = {
        "n_epochs": job.config.get("n_epochs", "auto"),
        "batch_size": job.config.get("batch_size", "auto"),
        "learning_rate_multiplier": job.config.get("learning_rate_multiplier", "auto"),
    }
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": _stamp(job.created_at),
        "finished_at": _stamp(job.finished_at),
        "fine_tuned_model": result.get("fine_tuned_model")
        if job.status is Status.SUCCEEDED
        else None,
        "organization_id": job.owner,
        "result_files": result_files,
        "status": job.status.value,
        "validation_file": job.input.get("validation_file_id"),
        "training_file": job.input["training_file_id"],
        "hyperparameters": hyper,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "trained_tokens": result.get("trained_tokens"),
        "error": error,
        "seed": job.input.get("seed", 0),
        "user_provided_suffix": job.input.get("suffix"),
        "estimated_finish": _estimated_finish(job),
        "integrations": [],
        "metadata": job.input.get("metadata"),
        "progress": round(job.progress, 4),
        "queue_position": queue_position,
    }


def _estimated_finish(job: Job) -> int | None:
    if job.status is not Status.RUNNING or job.started_at is None or job.progress <= 0.01:
        return None
    spent = time.time() - job.started_at
    return int(job.started_at + spent / job.progress)


TRANSITION_MESSAGES = {
    (Status.VALIDATING, Status.QUEUED): ("info", "Files validated, moving job to queued state"),
    (Status.VALIDATING, Status.FAILED): ("error", "File validation failed"),
    (Status.VALIDATING, Status.CANCELLED): ("info", "Fine-tuning job cancelled"),
    (Status.QUEUED, Status.RUNNING): ("info", "Fine-tuning job started"),
    (Status.QUEUED, Status.CANCELLED): ("info", "Fine-tuning job cancelled"),
    (Status.QUEUED, Status.FAILED): ("error", "Fine-tuning job failed"),
    (Status.RUNNING, Status.QUEUED): (
        "warn",
        "The worker running the job was lost; it resumes from its last checkpoint",
    ),
    (Status.RUNNING, Status.SUCCEEDED): ("info", "The job has successfully completed"),
    (Status.RUNNING, Status.FAILED): ("error", "Fine-tuning job failed"),
    (Status.RUNNING, Status.CANCELLED): ("info", "Fine-tuning job cancelled"),
}


def transition_event(row: Any, job: Job) -> dict[str, Any]:
    """A state change as a ``fine_tuning.job.event``."""
    source, target = Status(row["source"]), Status(row["target"])
    level, message = TRANSITION_MESSAGES.get((source, target), ("info", f"Job {target.value}"))
    if target is Status.FAILED and job.error_message:
        message = f"{message}: {job.error_message}"
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-t{row['id']}",
        "created_at": int(row["at"]),
        "level": level,
        "message": message,
        "data": {"from": source.value, "to": target.value},
        "type": "message",
        "_at": float(row["at"]),
    }


def log_event(entry: LogEntry) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-l{entry.id}",
        "created_at": int(entry.at),
        "level": entry.level,
        "message": entry.message,
        "data": entry.data or {},
        "type": entry.kind,
        "_at": entry.at,
    }


def checkpoint_object(checkpoint: Checkpoint, fine_tuned_model: str) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": int(checkpoint.created_at),
        "fine_tuned_model_checkpoint": f"{fine_tuned_model}:ckpt-step-{checkpoint.step}",
        "fine_tuning_job_id": checkpoint.job_id,
        "metrics": {"step": checkpoint.step, **checkpoint.metrics},
        "step_number": checkpoint.step,
        "epoch": checkpoint.epoch,
    }


def model_object(name: str, created: float, owner: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created), "owned_by": owner}


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page over ``items`` (newest first): those after the id ``after``."""
    start = 0
    if after is not None:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), len(items))
    chosen = items[start : start + limit]
    data = [{k: v for k, v in item.items() if not k.startswith("_")} for item in chosen]
    return {
        "object": "list",
        "data": data,
        "has_more": start + limit < len(items),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
