"""HTTP routes of the job API: jobs, and the synchronous segmentation convenience."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jobs.inbound import read_body, who
from jobs.protocol import JobRequest, SegmentationRequest, parse
from jobs.service import MAX_WAIT, JobService
from jobs.states import Status
from p2.core.errors import APIError, BadRequest

MAX_KEY = 256
BODY_OVERHEAD = 64 * 1024  # the body around the input: task, model, config


def _status(value: str | None) -> Status | None:
    if value is None:
        return None
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise BadRequest(
            f"Invalid value for 'status': '{value}'. Known: {known}.", param="status"
        ) from None


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise BadRequest(
            f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.",
            param="Idempotency-Key",
        )
    return key


def build_router(service: JobService) -> APIRouter:
    router = APIRouter()
    body_limit = service.settings.max_inline_bytes + BODY_OVERHEAD

    @router.post("/v1/jobs")
    async def submit(request: Request) -> JSONResponse:
        body = parse(JobRequest, await read_body(request, body_limit))
        job, created = await service.submit(who(request), body, idempotency_key(request))
        return JSONResponse(job, status_code=201 if created else 200)

    @router.get("/v1/jobs")
    async def list_jobs(
        request: Request,
        status: str | None = None,
        task: str | None = None,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        return await service.list(
            who(request), status=_status(status), task=task, after=after, limit=limit
        )

    @router.get("/v1/jobs/{job_id}")
    async def get_job(
        request: Request,
        job_id: str,
        wait: Annotated[float | None, Query(ge=0, le=MAX_WAIT)] = None,
    ) -> dict[str, Any]:
        return await service.job(who(request), job_id, wait)

    @router.get("/v1/jobs/{job_id}/result")
    async def get_result(request: Request, job_id: str) -> dict[str, Any]:
        return await run_in_threadpool(service.result, who(request), job_id)

    @router.get("/v1/jobs/{job_id}/events")
    async def get_events(request: Request, job_id: str) -> dict[str, Any]:
        return await run_in_threadpool(service.events, who(request), job_id)

    @router.post("/v1/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: str) -> dict[str, Any]:
        return await run_in_threadpool(service.cancel, who(request), job_id)

    @router.post("/v1/segmentations")
    async def segment(request: Request) -> JSONResponse:
        """Run a segmentation job and answer with its result if it finishes in time."""
        body = parse(SegmentationRequest, await read_body(request, body_limit))
        caller = who(request)
        job, _ = await service.submit(caller, body.job(), idempotency_key(request))
        timeout = min(body.timeout or service.settings.sync_timeout, service.settings.sync_timeout)
        done = await service.finished(job["id"], timeout)
        if done.status is Status.SUCCEEDED:
            return JSONResponse(await run_in_threadpool(service.result_of, done))
        if done.status is Status.FAILED:
            status = 400 if done.error_code == "invalid_input" else 500
            raise APIError(
                f"Job {done.id} failed: {done.error_message}",
                status_code=status,
                code=done.error_code,
            )
        if done.status is Status.CANCELLED:
            raise APIError(
                f"Job {done.id} was cancelled.",
                status_code=409,
                error_type="invalid_request_error",
                code="job_cancelled",
            )
        described = await run_in_threadpool(service.describe, done)
        return JSONResponse(described, status_code=202, headers={"Location": f"/v1/jobs/{done.id}"})

    return router
