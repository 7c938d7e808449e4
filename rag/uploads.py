"""Documents out of an indexing request: a JSON body or a multipart upload of files."""

from __future__ import annotations

import mimetypes

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from p2.core.errors import BadRequest, PayloadTooLarge
from rag.documents import Document
from rag.errors import ExtractionError
from rag.extract import SUPPORTED, extract
from rag.protocol import DocumentsBody


def _validation_message(exc: ValidationError) -> BadRequest:
    errors = exc.errors()
    if not errors:
        return BadRequest("Invalid request body.")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "json_invalid":
        return BadRequest("We could not parse the JSON body of your request: it is not valid JSON.")
    return BadRequest(f"Invalid value for '{where or 'body'}': {first['msg']}.", param=where)


async def _from_json(request: Request) -> list[Document]:
    try:
        body = DocumentsBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _validation_message(exc) from None
    return [Document(d.id, d.text, d.metadata, d.source or d.id) for d in body.documents]


async def _from_files(request: Request, max_bytes: int) -> list[Document]:
    form = await request.form(max_files=10_000)
    docs: list[Document] = []
    for _, value in form.multi_items():
        if not isinstance(value, UploadFile):
            continue
        name = (value.filename or "").strip()
        if not name:
            raise BadRequest("Every uploaded file needs a file name: it becomes the document id.")
        data = await value.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(
                f"The file '{name}' is larger than {max_bytes} bytes (RAG_MAX_DOCUMENT_BYTES)."
            )
        try:
            text = extract(name, data)
        except ExtractionError as exc:
            raise BadRequest(f"'{name}': {exc}", param="files", code="unreadable_file") from None
        kind = mimetypes.guess_type(name)[0] or "text/plain"
        docs.append(Document(name, text, {"filename": name, "content_type": kind}, name))
    if not docs:
        raise BadRequest(
            f"The upload contains no files: send .{', .'.join(s[1:] for s in SUPPORTED)} files "
            "as multipart form fields.",
            param="files",
        )
    return docs


async def documents_from(request: Request, max_bytes: int) -> list[Document]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _from_files(request, max_bytes)
    return await _from_json(request)
