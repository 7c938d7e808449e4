"""Documents out of an indexing request: a JSON body or a multipart upload of files.

Everything a request carries is read and checked before anything is written:
sizes while the body streams in (``rag.limits``, ``rag.multipart``), then each
file's text (``rag.extractor``) and each document's size and metadata. A
refusal names the document or file it is about.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes

import orjson
from anyio import CapacityLimiter, to_thread
from fastapi import Request
from pydantic import ValidationError

from p2.core.errors import APIError, BadRequest, PayloadTooLarge
from rag.documents import Document
from rag.errors import ExtractionError, ExtractionTimeout, TooManyPages
from rag.extract import SUPPORTED
from rag.extractor import Extractor
from rag.multipart import UploadedFile, read_files
from rag.protocol import DocumentsBody
from rag.settings import RagSettings

log = logging.getLogger("p2.rag.uploads")


def _validation_message(exc: ValidationError) -> BadRequest:
    errors = exc.errors()
    if not errors:
        return BadRequest("Invalid request body.")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "json_invalid":
        return BadRequest("We could not parse the JSON body of your request: it is not valid JSON.")
    return BadRequest(f"Invalid value for '{where or 'body'}': {first['msg']}.", param=where)


def _parse(body: bytes) -> list[Document]:
    try:
        parsed = DocumentsBody.model_validate_json(body)
    except ValidationError as exc:
        raise _validation_message(exc) from None
    return [Document(d.id, d.text, d.metadata, d.source or d.id) for d in parsed.documents]


def _check_sizes(docs: list[Document], max_text: int, max_metadata: int) -> None:
    for i, doc in enumerate(docs):
        if len(doc.text.encode()) > max_text:
            raise PayloadTooLarge(
                f"The document '{doc.id[:200]}' is larger than {max_text} bytes "
                "(RAG_MAX_DOCUMENT_BYTES).",
                param=f"documents.{i}.text",
                code="document_too_large",
            )
        if len(orjson.dumps(doc.metadata)) > max_metadata:
            raise PayloadTooLarge(
                f"The metadata of document '{doc.id[:200]}' is larger than {max_metadata} bytes "
                "as JSON (RAG_MAX_METADATA_BYTES).",
                param=f"documents.{i}.metadata",
                code="metadata_too_large",
            )


def _refusal(name: str, exc: ExtractionError) -> APIError:
    """What the client is told about a file without text, naming it."""
    message = f"'{name[:200]}': {exc}"
    if isinstance(exc, TooManyPages):
        return PayloadTooLarge(message, param="files", code="too_many_pages")
    if isinstance(exc, ExtractionTimeout):
        return APIError(message, status_code=422, param="files", code="extraction_timeout")
    return BadRequest(message, param="files", code="unreadable_file")


class Uploads:
    """Reads indexing requests within the service's limits."""

    def __init__(self, settings: RagSettings, extractor: Extractor, cpu: CapacityLimiter) -> None:
        self.settings = settings
        self.extractor = extractor
        self.cpu = cpu

    async def documents(self, request: Request) -> list[Document]:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            docs = await self._from_files(request)
        else:
            docs = await self._from_json(request)
        settings = self.settings
        await to_thread.run_sync(
            _check_sizes,
            docs,
            settings.max_document_bytes,
            settings.max_metadata_bytes,
            limiter=self.cpu,
        )
        return docs

    async def _from_json(self, request: Request) -> list[Document]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        return await to_thread.run_sync(_parse, bytes(body), limiter=self.cpu)

    async def _from_files(self, request: Request) -> list[Document]:
        settings = self.settings
        files = await read_files(
            request, max_files=settings.max_files, max_file_bytes=settings.max_document_bytes
        )
        if not files:
            raise BadRequest(
                f"The upload contains no files: send .{', .'.join(s[1:] for s in SUPPORTED)} "
                "files as multipart form fields.",
                param="files",
            )
        # Every file is read before any is refused: the first refusal in upload order wins.
        texts = await asyncio.gather(*(self._text(f) for f in files), return_exceptions=True)
        docs = []
        for file, text in zip(files, texts, strict=True):
            if isinstance(text, ExtractionError):
                if text.detail:
                    log.warning("cannot extract the text of %r: %s", file.name, text.detail)
                raise _refusal(file.name, text)
            if isinstance(text, BaseException):
                raise text
            kind = mimetypes.guess_type(file.name)[0] or "text/plain"
            metadata = {"filename": file.name, "content_type": kind}
            docs.append(Document(file.name, text, metadata, file.name))
        return docs

    async def _text(self, file: UploadedFile) -> str:
        data = bytes(file.data)
        file.data.clear()  # the text is all that is kept
        return await self.extractor.text(file.name, data)
