"""Small HTTP helpers of the job API: who is calling, and reading a body with a limit."""

from __future__ import annotations

from fastapi import Request

from jobs.service import Who
from p2.core.auth import caller_of
from p2.core.errors import BadRequest, PayloadTooLarge


def who(request: Request) -> Who:
    return Who.of(caller_of(request.scope))


def declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("The Content-Length header is not a number.") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes; send large inputs as files "
        "(POST /v1/files) and name them in the job's input.",
        code="request_too_large",
    )
