"""API-key check as a plain ASGI middleware (no per-request objects on the hot path).

Requests need ``Authorization: Bearer <key>`` with a configured key, except
on the open paths (``/health``, ``/health/ready``, ``/metrics`` by default).
With no keys configured the gateway is open. Keys are compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from p2.core.errors import error_body

_PREFIX = b"bearer "


def _unauthorized(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps(error_body(message, "authentication_error", code="invalid_api_key"))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="p2"'),
    ]
    return headers, body


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: frozenset[str], open_paths: frozenset[str]) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in keys)
        self.open_paths = open_paths

    def _token(self, scope: Scope) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                if value[:7].lower() == _PREFIX:
                    return bytes(value[7:].strip())
                return None
        return None

    def _allowed(self, token: bytes) -> bool:
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.keys or scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = self._token(scope)
        if token is not None and self._allowed(token):
            await self.app(scope, receive, send)
            return
        message = (
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
            if token is None
            else "Incorrect API key provided."
        )
        headers, body = _unauthorized(message)
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
