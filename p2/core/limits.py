"""A request body limit enforced while the body streams in: 413 at the byte that passes it.

A declared ``Content-Length`` above the limit is refused before anything is
read; a body without one (chunked) is counted as it arrives. The check runs
when a handler reads the body, so the key check and the routing come first.
The refusal is an ``HTTPException`` because FastAPI passes those through its
body parsing (any other error there becomes a 400); P2's handlers render it
in OpenAI's format.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes ({setting}).")


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body (``setting`` names the knob)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, setting: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise BodyTooLarge(self.max_bytes, self.setting)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, self.setting)
            return message

        await self.app(scope, limited, send)
