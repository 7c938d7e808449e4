"""OpenAI-format errors and the exception handlers that guarantee them.

Every P2 service answers bad input with a 4xx whose body is OpenAI's
``{"error": {"message", "type", "param", "code"}}`` and never leaks a
traceback: clients written against OpenAI parse our failures as theirs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("p2.errors")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class APIError(Exception):
    """An error meant for the client, rendered in OpenAI's format."""

    status_code: int = 500
    error_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.error_type = error_type or _TYPE_BY_STATUS.get(self.status_code, self.error_type)
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


class BadRequest(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(APIError):
    status_code = 404
    error_type = "not_found_error"


class Unauthorized(APIError):
    status_code = 401
    error_type = "authentication_error"


class PayloadTooLarge(APIError):
    status_code = 413
    error_type = "invalid_request_error"


class ServiceUnavailable(APIError):
    status_code = 503
    error_type = "service_unavailable_error"


class GatewayTimeout(APIError):
    status_code = 504
    error_type = "timeout_error"


def error_body(
    message: str,
    error_type: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | int | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status_code: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    kind = error_type or _TYPE_BY_STATUS.get(status_code, "api_error")
    return JSONResponse(
        error_body(message, kind, param=param, code=code),
        status_code=status_code,
        headers=dict(headers or {}),
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(
        exc.status_code,
        exc.message,
        error_type=exc.error_type,
        param=exc.param,
        code=exc.code,
        headers=exc.headers,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def _describe_validation(errors: list[Any]) -> tuple[str, str | None]:
    if not errors:
        return "Invalid request body.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request: it is not valid JSON.", None
    msg = first.get("msg", "invalid value")
    where = f"'{param}'" if param else "the request body"
    return f"Invalid value for {where}: {msg}.", param


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = _describe_validation(list(exc.errors()))
    return error_response(400, message, param=param)


def exception_handlers(who: str = "server") -> dict[Any, Any]:
    """OpenAI-format handlers for any Starlette app: API errors, HTTP errors, the unexpected.

    ``who`` names the service in the 500 message. Async, so Starlette runs them
    on the loop rather than in its thread pool.
    """

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"The {who} had an internal error while processing the request.")

    return {APIError: _api_error, StarletteHTTPException: _http_error, Exception: unhandled}


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure of ``app`` an OpenAI-format JSON error."""
    for kind, handler in exception_handlers().items():
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(json.JSONDecodeError, _validation_error_from_json)


async def _validation_error_from_json(_: Request, exc: Exception) -> JSONResponse:
    return error_response(
        400, "We could not parse the JSON body of your request: it is not valid JSON."
    )
