"""Reading and checking client requests, cheaply.

The gateway does not re-validate every OpenAI field (the backend does, and
answers 4xx in OpenAI's format, which is relayed). It checks only what it
needs to route: a JSON object under the size limit, a known ``model``, a
boolean ``stream`` and the endpoint's required field.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Scope

from p2.core.errors import BadRequest, PayloadTooLarge


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise BadRequest("Invalid Content-Length header.") from None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request: it is not valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.", param="model")
    return model


def require_stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("Invalid value for 'stream': expected a boolean.", param="stream")
    return stream


def check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of messages.", param="messages")


def check_completion(body: dict[str, Any]) -> None:
    if body.get("prompt") is None:
        raise BadRequest("'prompt' is required.", param="prompt")


def check_embedding(body: dict[str, Any]) -> None:
    if body.get("input") in (None, "", []):
        raise BadRequest("'input' is required.", param="input")
