"""``POST /v1/files``: a multipart upload parsed as it streams, refused (413) at the limit.

Starlette's form parser spools a whole file before anyone can look at it; this
one writes each chunk to the file store as it arrives, hashing and counting, and
stops reading the moment the size limit is passed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from jobs.files import Incoming, TooLarge
from p2.core.errors import BadRequest, PayloadTooLarge

FIELDS = ("file", "purpose")
MAX_FIELD_BYTES = 1024
FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and the purpose field

OpenFile = Callable[[], Incoming]


@dataclass
class Upload:
    """The parsed form: the file (already written) and the text fields."""

    incoming: Incoming | None = None
    filename: str = ""
    media_type: str = "application/octet-stream"
    fields: dict[str, str] = field(default_factory=dict)


class _Parts:
    """python-multipart callbacks that route each part to a file or a text field."""

    def __init__(self, open_file: OpenFile, upload: Upload) -> None:
        self._open_file = open_file
        self.upload = upload
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._text = bytearray()
        self._is_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._text = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name not in FIELDS:
            raise BadRequest(
                f"Unrecognized request argument supplied: {self._name or '(unnamed part)'}.",
                param=self._name or None,
                code="unknown_parameter",
            )
        self._is_file = b"filename" in params
        if self._name == "file":
            if not self._is_file or self.upload.incoming is not None:
                raise BadRequest("'file' must be one uploaded file.", param="file")
            self.upload.filename = params[b"filename"].decode("utf-8", "replace") or "upload"
            kind = self._headers.get(b"content-type", b"").decode("latin-1").strip()
            self.upload.media_type = kind or "application/octet-stream"
            self.upload.incoming = self._open_file()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file" and self.upload.incoming is not None:
            self.upload.incoming.write(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > MAX_FIELD_BYTES:
            raise BadRequest(f"'{self._name}' is too long.", param=self._name)

    def _part_end(self) -> None:
        if self._name != "file":
            self.upload.fields[self._name] = self._text.decode("utf-8", "replace")


async def read_upload(
    content_type: str, stream: AsyncIterator[bytes], open_file: OpenFile, limit: int
) -> Upload:
    """Parse the form from ``stream``; on any refusal the partial file is removed."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadRequest(
            "Upload a file as multipart/form-data with the fields 'file' and 'purpose'.",
            param="file",
        )
    parts = _Parts(open_file, Upload())
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except TooLarge:
        _discard(parts.upload)
        raise PayloadTooLarge(
            f"The file is larger than the limit of {limit} bytes (JOBS_MAX_UPLOAD_BYTES).",
            param="file",
            code="file_too_large",
        ) from None
    except MultipartParseError as exc:
        _discard(parts.upload)
        raise BadRequest(f"The multipart form could not be parsed: {exc}.", param="file") from None
    except BaseException:
        _discard(parts.upload)
        raise
    return parts.upload


def _discard(upload: Upload) -> None:
    if upload.incoming is not None:
        upload.incoming.discard()
