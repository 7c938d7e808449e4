"""Request validation errors worded for clients: an unknown field is named as such.

P2's shared handler says ``Invalid value for 'foo'``; for a field this server does
not know at all, OpenAI's wording (``Unrecognized request argument supplied``) is
clearer, and a refused field's reason reads better without pydantic's prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from p2.core.errors import error_response


def _param(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p != "body")


def name_unknown_fields(app: FastAPI) -> None:
    """Wrap ``app``'s validation handler (installed by ``service_app``)."""
    fallback = app.exception_handlers[RequestValidationError]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
        if unknown:
            param = _param(unknown[0])
            return error_response(
                400,
                f"Unrecognized request argument supplied: {param}. This server does not honour it.",
                param=param,
                code="unknown_parameter",
            )
        if errors and errors[0].get("type") == "value_error":
            reason = errors[0].get("ctx", {}).get("error")
            if reason is not None:
                return error_response(400, str(reason), param=_param(errors[0]) or None)
        answer = fallback(request, exc)
        return await answer if isinstance(answer, Awaitable) else answer

    app.add_exception_handler(RequestValidationError, handler)


__all__ = ["name_unknown_fields"]
