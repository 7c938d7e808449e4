"""A multipart upload read as it streams in, with its limits checked part by part.

Starlette's form parser spools every file before anyone can look at its size
and accepts thousands of them; here the file count is checked when a file part
begins and each file's size with every piece of it, so an upload that breaks a
limit is refused (413) at the byte that breaks it. Fields that are not files
are skipped. The body as a whole is bounded by ``p2.core.limits.BodyLimit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from p2.core.errors import BadRequest, PayloadTooLarge


@dataclass
class UploadedFile:
    name: str
    data: bytearray = field(default_factory=bytearray)


class _Reader:
    """The parser's callbacks: headers of the current part, then its bytes."""

    def __init__(self, max_files: int, max_file_bytes: int) -> None:
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.files: list[UploadedFile] = []
        self._current: UploadedFile | None = None
        self._field = bytearray()
        self._value = bytearray()
        self._disposition = b""

    def on_part_begin(self) -> None:
        self._current = None
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._field).lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" not in options:
            return  # a plain form field: not a document
        name = options[b"filename"].decode("utf-8", errors="replace").strip()
        if not name:
            raise BadRequest(
                "Every uploaded file needs a file name: it becomes the document id.",
                param="files",
            )
        if len(self.files) >= self.max_files:
            raise PayloadTooLarge(
                f"The upload has more than {self.max_files} files (RAG_MAX_FILES): "
                "send them in several requests.",
                param="files",
                code="too_many_files",
            )
        self._current = UploadedFile(name)
        self.files.append(self._current)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        current = self._current
        if current is None:
            return
        current.data += data[start:end]
        if len(current.data) > self.max_file_bytes:
            raise PayloadTooLarge(
                f"The file '{current.name[:200]}' is larger than {self.max_file_bytes} bytes "
                "(RAG_MAX_DOCUMENT_BYTES).",
                param="files",
                code="file_too_large",
            )


async def read_files(
    request: Request, *, max_files: int, max_file_bytes: int
) -> list[UploadedFile]:
    """The files of a ``multipart/form-data`` request, in order."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart upload has no boundary in its Content-Type.")
    reader = _Reader(max_files, max_file_bytes)
    callbacks = {
        "on_part_begin": reader.on_part_begin,
        "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value,
        "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished,
        "on_part_data": reader.on_part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"The multipart upload is malformed: {exc}.") from None
    return reader.files
