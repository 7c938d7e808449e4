"""The key check every P2 port runs, as plain ASGI (no per-request objects on the hot path).

A request needs ``Authorization: Bearer <key>``; the ``AccessPolicy`` says
which scope the route needs. No key: 401; a key whose scope is too low: 403;
both in OpenAI's error format. With no key configured the app is open. The
caller is left in ``scope["state"]["caller"]`` for handlers that need it
(job ownership).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from p2.core.errors import error_body
from p2.core.keys import Access, AccessPolicy, Caller, Keyring

_BEARER = b"bearer "


def bearer_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:7].lower() == _BEARER:
                return bytes(value[7:].strip())
            return None
    return None


Headers = list[tuple[bytes, bytes]]


def _refusal(status: int, message: str, error_type: str, code: str) -> tuple[Headers, bytes]:
    body = orjson.dumps(error_body(message, error_type, code=code))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="p2"'))
    return headers, body


class RequireKey:
    def __init__(self, app: ASGIApp, keyring: Keyring, policy: AccessPolicy) -> None:
        self.app = app
        self.keyring = keyring
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.keyring.open or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = self.policy.required(scope["method"], scope["path"])
        if need is Access.OPEN:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        caller = self.keyring.caller(token) if token is not None else None
        if caller is not None and caller.access >= need:
            scope.setdefault("state", {})["caller"] = caller
            await self.app(scope, receive, send)
            return
        await self._refuse(send, token, caller)

    @staticmethod
    async def _refuse(send: Send, token: bytes | None, caller: Caller | None) -> None:
        if caller is not None:
            status, refusal = (
                403,
                _refusal(
                    403,
                    "This API key may not use this endpoint: it needs an admin key.",
                    "permission_error",
                    "insufficient_scope",
                ),
            )
        elif token is None:
            status, refusal = (
                401,
                _refusal(
                    401,
                    "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                    "authentication_error",
                    "invalid_api_key",
                ),
            )
        else:
            status, refusal = (
                401,
                _refusal(
                    401, "Incorrect API key provided.", "authentication_error", "invalid_api_key"
                ),
            )
        headers, body = refusal
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def caller_of(scope: Scope) -> Caller | None:
    """The authenticated caller of a request (None when the app runs without keys)."""
    state = scope.get("state") or {}
    caller = state.get("caller")
    return caller if isinstance(caller, Caller) else None
