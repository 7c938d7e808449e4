"""HTTP routes of the fine-tuning API (``/v1/fine_tuning/jobs``) and of the fine-tuned
models (``/v1/models``), in OpenAI's shapes so the official SDK works unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from jobs.ft_protocol import FineTuningRequest
from jobs.ft_service import FineTuningService
from jobs.inbound import read_body, who
from jobs.protocol import parse
from jobs.routes import idempotency_key
from jobs.service import MAX_WAIT
from p2.core.keys import Access, rule

BODY_LIMIT = 64 * 1024
# Deleting a fine-tuned model is an admin's act; every other route needs a user key.
MODEL_RULES = (rule("/v1/models/*", Access.ADMIN, "DELETE"),)


def build_fine_tuning_router(service: FineTuningService) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/fine_tuning/jobs")
    async def create(request: Request) -> dict[str, Any]:
        """200 with the job, as OpenAI answers (also for a replayed ``Idempotency-Key``)."""
        body = parse(FineTuningRequest, await read_body(request, BODY_LIMIT))
        job, _ = await service.create(who(request), body, idempotency_key(request))
        return job

    @router.get("/v1/fine_tuning/jobs")
    async def list_jobs(
        request: Request,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        return await run_in_threadpool(service.list, who(request), after, limit)

    @router.get("/v1/fine_tuning/jobs/{job_id}")
    async def get_job(
        request: Request,
        job_id: str,
        wait: Annotated[float | None, Query(ge=0, le=MAX_WAIT)] = None,
    ) -> dict[str, Any]:
        return await service.get(who(request), job_id, wait)

    @router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: str) -> dict[str, Any]:
        return await run_in_threadpool(service.cancel, who(request), job_id)

    @router.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def events(
        request: Request,
        job_id: str,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> dict[str, Any]:
        return await run_in_threadpool(service.events, who(request), job_id, after, limit)

    @router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def checkpoints(
        request: Request,
        job_id: str,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        return await run_in_threadpool(service.checkpoints, who(request), job_id, after, limit)

    @router.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(service.list_models, who(request))

    @router.get("/v1/models/{model:path}")
    async def get_model(request: Request, model: str) -> dict[str, Any]:
        return await run_in_threadpool(service.get_model, who(request), model)

    @router.delete("/v1/models/{model:path}")
    async def delete_model(request: Request, model: str) -> dict[str, Any]:
        return await run_in_threadpool(service.delete_model, who(request), model)

    return router
