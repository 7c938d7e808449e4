"""Small scripted upstreams for gateway tests, served by ``ThreadServer`` on real ports.

``ScriptedBackend`` is an OpenAI backend whose answers depend on the request
(a message text can script a status), whose ``/health`` can be slow, and which
records when the gateway closes a connection on it: what the testkit mock
cannot show.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from testkit.threadserver import ThreadServer


@dataclass
class ScriptedBackend:
    """A raw ASGI OpenAI backend; change its fields while it runs."""

    model: str = "chat"
    url: str = ""  # its api_base, once served
    health_delay: float = 0.0  # /health answers after this long
    reply_delay: float = 0.0  # a non-streamed answer comes after this long
    chunks: int = 8
    chunk_delay: float = 0.0
    pad: int = 0  # extra characters in every streamed token
    scripted: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    authorization: bytes | None = None  # of the last request
    closed: threading.Event = field(default_factory=threading.Event)  # the gateway hung up
    closed_at: float = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await asyncio.sleep(self.health_delay)
            await _json(send, 200, {"status": "ok"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls[scope["path"]] += 1
        self.authorization = dict(scope["headers"]).get(b"authorization")
        body = json.loads(raw)
        text = _text(body)
        if text in self.scripted:
            status, payload = self.scripted[text]
            await _json(send, status, payload)
            return
        if scope["path"].endswith("/embeddings"):
            await _json(send, 200, _embeddings(body.get("input")))
            return
        chat = scope["path"].endswith("/chat/completions")
        hung_up = asyncio.ensure_future(self._hang_up(receive))
        try:
            if body.get("stream"):
                await self._stream(send, hung_up, chat)
            else:
                await asyncio.wait([hung_up], timeout=self.reply_delay)
                if not hung_up.done():
                    await _json(send, 200, _completion(self.model, self.chunks, chat))
        finally:
            hung_up.cancel()

    async def _hang_up(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.closed_at = time.monotonic()
        self.closed.set()

    async def _stream(self, send: Send, hung_up: asyncio.Future[None], chat: bool) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pad = "." * self.pad
        for i in range(self.chunks):
            if hung_up.done():
                return
            await _event(send, _chunk(self.model, f"tok{i} {pad}", None, chat))
            if self.chunk_delay:
                await asyncio.wait([hung_up], timeout=self.chunk_delay)
            else:
                await asyncio.sleep(0)
        await _event(send, _chunk(self.model, "", "stop", chat))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content"))
    return str(body.get("prompt"))


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _event(send: Send, payload: dict[str, Any]) -> None:
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


def _chunk(model: str, text: str, finish: str | None, chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text} if text else {}
    else:
        choice["text"] = text
    return {
        "id": "cmpl-scripted",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": 1,
        "model": model,
        "choices": [choice],
    }


def _completion(model: str, tokens: int, chat: bool) -> dict[str, Any]:
    text = "".join(f"tok{i} " for i in range(tokens))
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": "cmpl-scripted",
        "object": "chat.completion" if chat else "text_completion",
        "created": 1,
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
    }


def _embeddings(inputs: object) -> dict[str, Any]:
    count = len(inputs) if isinstance(inputs, list) else 1
    data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(count)]
    return {
        "object": "list",
        "data": data,
        "model": "embed",
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


def error(status: int, message: str, code: str | None = None) -> tuple[int, dict[str, Any]]:
    """A scripted OpenAI error answer."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}


def serve(backend: ScriptedBackend) -> ThreadServer:
    """Serve ``backend`` on a free port (started; its ``url`` set); ``stop()`` it after."""
    server = ThreadServer(backend, timeout_graceful_shutdown=1).start()
    backend.url = f"{server.url}/v1"
    return server
