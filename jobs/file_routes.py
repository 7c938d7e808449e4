"""``/v1/files`` in OpenAI's shape, so the official SDK's ``client.files`` works unchanged."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from jobs.files import PURPOSES, FileRecord, FileStore
from jobs.inbound import declared_length, who
from jobs.service import Who
from jobs.uploads import FORM_OVERHEAD, read_upload
from p2.core.errors import BadRequest, NotFound, PayloadTooLarge
from p2.core.health import Readiness
from p2.core.openai import not_ready


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="file_id", code="file_not_found")


def build_file_router(files: FileStore, readiness: Readiness, limit: int) -> APIRouter:
    router = APIRouter()

    def ready() -> None:
        if not readiness.ready:
            raise not_ready(readiness.detail)

    def visible(caller: Who, file_id: str) -> FileRecord:
        ready()
        record = files.get(file_id)
        if record is None or not caller.sees(record.owner):
            raise _not_found(file_id)
        return record

    @router.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        ready()
        declared = declared_length(request)
        if declared is not None and declared > limit + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"The file is larger than the limit of {limit} bytes (JOBS_MAX_UPLOAD_BYTES).",
                param="file",
                code="file_too_large",
            )
        form = await read_upload(
            request.headers.get("content-type", ""),
            request.stream(),
            lambda: files.incoming(limit),
            limit,
        )
        incoming = form.incoming
        purpose = form.fields.get("purpose", "")
        if incoming is None:
            raise BadRequest("Missing required parameter: 'file'.", param="file")
        if purpose not in PURPOSES:
            incoming.discard()
            raise BadRequest(
                f"Invalid value for 'purpose': '{purpose}'. Known: {', '.join(PURPOSES)}.",
                param="purpose",
            )
        record = await run_in_threadpool(
            lambda: files.commit(
                incoming,
                owner=who(request).owner,
                filename=form.filename,
                purpose=purpose,
                media_type=form.media_type,
            )
        )
        return record.openai()

    @router.get("/v1/files")
    async def list_files(
        request: Request,
        purpose: str | None = None,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
        order: Literal["asc", "desc"] = "desc",
    ) -> dict[str, Any]:
        ready()
        caller = who(request)
        records, more = await run_in_threadpool(
            lambda: files.page(
                owner=caller.only,
                purpose=purpose,
                after=after,
                limit=limit,
                newest_first=order == "desc",
            )
        )
        data = [r.openai() for r in records]
        return {
            "object": "list",
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    @router.get("/v1/files/{file_id}")
    async def retrieve(request: Request, file_id: str) -> dict[str, Any]:
        record = await run_in_threadpool(visible, who(request), file_id)
        return record.openai()

    @router.get("/v1/files/{file_id}/content")
    async def content(request: Request, file_id: str) -> FileResponse:
        record = await run_in_threadpool(visible, who(request), file_id)
        path = files.path(record.id)
        if not path.exists():
            raise NotFound(
                f"The content of {file_id} is missing from the artifact store.",
                param="file_id",
                code="file_content_missing",
            )
        return FileResponse(path, media_type=record.media_type)

    @router.delete("/v1/files/{file_id}")
    async def delete(request: Request, file_id: str) -> dict[str, Any]:
        record = await run_in_threadpool(visible, who(request), file_id)
        await run_in_threadpool(files.delete, record.id)
        return {"id": record.id, "object": "file", "deleted": True}

    return router
