"""Server-sent events in OpenAI's framing: ``data: <json>\\n\\n``, ended by ``data: [DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from p2.core.errors import error_body

DONE = b"data: [DONE]\n\n"
DONE_MARK = b"data: [DONE]"


# One server-sent event as OpenAPI 3.1 tools read a text/event-stream schema: each event's
# data is a JSON chunk of the answer, an error, or [DONE].
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}

# An OpenAPI 200 response for routes that answer JSON, or with ``stream: true`` server-sent
# events (FastAPI's ``responses=``): schema tools then accept both content types.
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer, or with stream: true server-sent events ending in "
        "data: [DONE].",
        "content": {
            "application/json": {},
            "text/event-stream": {"schema": SSE_EVENT_SCHEMA},
        },
    }
}


def sse(payload: Any) -> bytes:
    """One event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_error(message: str, error_type: str = "server_error", code: str | None = None) -> bytes:
    """An OpenAI error object as an event: how a stream that already started reports failure."""
    return sse(error_body(message, error_type, code=code))
