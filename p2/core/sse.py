"""Server-sent events in OpenAI's framing: ``data: <json>\\n\\n``, ended by ``data: [DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from p2.core.errors import error_body

DONE = b"data: [DONE]\n\n"
DONE_MARK = b"data: [DONE]"


def sse(payload: Any) -> bytes:
    """One event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_error(message: str, error_type: str = "server_error", code: str | None = None) -> bytes:
    """An OpenAI error object as an event: how a stream that already started reports failure."""
    return sse(error_body(message, error_type, code=code))
