"""Exception handlers that make every gateway failure an OpenAI-format error.

The gateway is a plain Starlette app (FastAPI's per-request layers cost more
than the gateway's own work), so it installs its own handlers built on
``p2.core.errors``: never a traceback in a response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from p2.core.errors import APIError, error_response

log = logging.getLogger("p2.gateway.errors")


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(
        exc.status_code,
        exc.message,
        error_type=exc.error_type,
        param=exc.param,
        code=exc.code,
        headers=exc.headers,
    )


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def unhandled(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "The gateway had an internal error while processing the request.")


def handlers() -> Mapping[Any, Any]:
    return {APIError: api_error, HTTPException: http_error, Exception: unhandled}
