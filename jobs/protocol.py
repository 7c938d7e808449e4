"""The job API's request bodies and response shapes (OpenAI's list and file conventions).

Bodies are parsed here, not by FastAPI, so a too-large body is refused while it
is read and every refusal names the offending field: an unknown field is a 400
that says which.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobs.files import FileRecord
from jobs.store import Job
from p2.core.errors import BadRequest

R = TypeVar("R", bound=BaseModel)


class JobRequest(BaseModel):
    """``POST /v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)

    def digest(self) -> str:
        """What an ``Idempotency-Key`` is bound to: the request's canonical JSON."""
        return hashlib.sha256(
            orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()


class SegmentationRequest(BaseModel):
    """``POST /v1/segmentations``: a segmentation job answered in the request."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)  # capped by JOBS_SYNC_TIMEOUT

    def job(self) -> JobRequest:
        return JobRequest(
            task="segmentation", model=self.model, input=self.input, config=self.config
        )


def parse(kind: type[R], raw: bytes) -> R:
    """``raw`` JSON as ``kind``; a 400 naming the field otherwise."""
    try:
        return kind.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or None
        if error["type"] == "json_invalid":
            raise BadRequest(
                "We could not parse the JSON body of your request: it is not valid JSON."
            ) from None
        if error["type"] == "extra_forbidden":
            raise BadRequest(
                f"Unrecognized request argument supplied: {field}.",
                param=field,
                code="unknown_parameter",
            ) from None
        if error["type"] == "missing":
            raise BadRequest(f"Missing required parameter: '{field}'.", param=field) from None
        where = f"'{field}'" if field else "the request body"
        raise BadRequest(f"Invalid value for {where}: {error['msg']}.", param=field) from None


def _stamp(value: float | None) -> int | None:
    return int(value) if value is not None else None


def job_object(job: Job, *, queue_position: int | None = None) -> dict[str, Any]:
    error = None
    if job.error_code is not None or job.error_message is not None:
        error = {"message": job.error_message, "code": job.error_code}
    return {
        "id": job.id,
        "object": "job",
        "task": job.task,
        "model": job.model,
        "status": job.status.value,
        "progress": round(job.progress, 4),
        "queue_position": queue_position,
        "created_at": _stamp(job.created_at),
        "started_at": _stamp(job.started_at),
        "finished_at": _stamp(job.finished_at),
        "error": error,
        "attempts": job.attempts,
        "config": job.config,
    }


def result_object(job: Job, data: dict[str, Any], files: list[FileRecord]) -> dict[str, Any]:
    return {
        "object": "job.result",
        "job_id": job.id,
        "task": job.task,
        "model": job.model,
        "data": data,
        "files": [f.openai() for f in files],
    }


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
