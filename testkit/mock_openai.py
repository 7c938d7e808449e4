"""A fast mock OpenAI backend for gateway tests and benchmarks.

Raw asyncio + httptools (no framework), so it costs a few tens of
microseconds per request and is never the bottleneck of a gateway benchmark.
It serves ``/health``, ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions`` (stream and not) and ``/v1/embeddings``, with a configurable
latency and failure mode:

``ok``          answer normally
``error500``    answer 500 (OpenAI error body); ``error503`` / ``error429`` likewise
``loading``     ``/health`` and completions answer 503, like a backend loading its model
``hang``        accept connections and requests, never answer anything (a hung process)
``reset``       close the connection as soon as a request arrives
``die_midstream`` stream ``die_after`` chunks, then drop the connection
                (non-streamed requests are dropped without an answer)
``error_midstream`` stream ``die_after`` chunks, then an error event and ``[DONE]``

The mode can be changed at run time with ``POST /_mock/config`` (JSON with any
of ``mode``, ``latency``, ``chunks``, ``chunk_delay``, ``die_after``) and the
request counts read with ``GET /_mock/stats``. Run it with
``python -m testkit.mock_openai --port 9001 [--latency 0.05] [--model chat]``.

``flavour`` makes it another provider (``testkit.mock_providers``): ``cloud``
(no ``/health``), ``azure``, ``ollama`` or ``anthropic``; ``key`` makes it
refuse requests without that API key (401); ``--tls-cert``/``--tls-key`` (or
``ThreadedMock(tls=...)``) serve it over HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import orjson

from testkit import mock_providers as providers

MODES = (
    "ok",
    "error500",
    "error503",
    "error429",
    "loading",
    "hang",
    "reset",
    "die_midstream",
    "error_midstream",
)


@dataclass
class MockConfig:
    mode: str = "ok"
    latency: float = 0.0
    chunks: int = 8
    chunk_delay: float = 0.0
    die_after: int = 3
    model: str | None = None  # when set, other model names get a 404 (like inference)
    flavour: str = "openai"  # or a provider of testkit.mock_providers.FLAVOURS
    key: str | None = None  # when set, requests without it get 401
    counts: Counter[str] = field(default_factory=Counter)
    headers: dict[bytes, bytes] = field(default_factory=dict)  # of the last request
    models: list[str] = field(default_factory=list)  # the model names asked for, in order

    def update(self, values: dict[str, Any]) -> None:
        for key in ("mode", "latency", "chunks", "chunk_delay", "die_after"):
            if key in values:
                setattr(self, key, type(getattr(self, key))(values[key]))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")


def _error(status: int, message: str, kind: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    529: b"Overloaded",
}


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 ",
            str(status).encode(),
            b" ",
            _REASONS.get(status, b"OK"),
            b"\r\ncontent-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\n",
            extra,
            b"\r\n",
            body,
        )
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Handler(asyncio.Protocol):
    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.headers: dict[bytes, bytes] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.headers = {}

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        body = b"".join(self.body)
        task = asyncio.ensure_future(self._handle(method, path, body, self.headers))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _handle(
        self, method: bytes, path: bytes, raw: bytes, headers: dict[bytes, bytes]
    ) -> None:
        cfg = self.config
        mode = cfg.mode
        if path.startswith(b"/_mock/"):
            self._control(method, path, raw)
            return
        if mode == "hang":
            return
        if mode == "reset":
            self._close()
            return
        flavour = cfg.flavour
        deployment = None
        if flavour == "azure":
            path, deployment = providers.split_azure(path)
        if flavour != "openai" and path == b"/health":
            self._write(_response(404, _error(404, "no such endpoint", "not_found_error")))
            return
        if flavour == "ollama" and path in (b"/", b"/api/tags", b"/api/version"):
            cfg.counts[path.decode()] += 1
            answer = {
                b"/": b"Ollama is running",
                b"/api/tags": providers.ollama_tags(cfg.model or "mock"),
                b"/api/version": b'{"version":"0.5.0"}',
            }[path]
            self._write(_response(200, answer))
            return
        if cfg.key is not None and providers.key_of(headers, flavour) != cfg.key:
            cfg.counts["401"] += 1
            error = (
                providers.anthropic_error(401, "invalid x-api-key")
                if flavour == "anthropic"
                else _error(401, "Incorrect API key provided.", "invalid_request_error")
            )
            self._write(_response(401, error))
            return
        if flavour == "anthropic":
            await self._anthropic(path, raw, headers)
            return
        if path == b"/health":
            if mode == "loading":
                self._write(
                    _response(
                        503,
                        _error(503, "Loading model", "unavailable_error"),
                        b"retry-after: 1\r\n",
                    )
                )
            else:
                self._write(_response(200, b'{"status":"ok"}'))
            return
        cfg.counts[path.decode()] += 1
        cfg.headers = headers
        if path == b"/v1/models":
            self._write(
                _response(
                    200,
                    orjson.dumps(
                        {"object": "list", "data": [{"id": cfg.model or "mock", "object": "model"}]}
                    ),
                )
            )
            return
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            self._write(_response(400, _error(400, "invalid JSON", "invalid_request_error")))
            return
        if mode in ("error500", "error503", "error429", "loading"):
            status = {"error500": 500, "error429": 429}.get(mode, 503)
            extra = b"retry-after: 1\r\n" if status != 500 else b""
            self._write(_response(status, _error(status, f"mock {mode}", "api_error"), extra))
            return
        model = deployment or str(body.get("model") or "")
        cfg.models.append(model)
        if flavour == "ollama" and path == b"/api/chat":
            text = "".join(
                self._tokens({**body, "max_tokens": body.get("options", {}).get("num_predict")})
            )
            self._write(_response(200, providers.ollama_chat(model, text)))
            return
        if cfg.model is not None and model != cfg.model and path != b"/v1/embeddings":
            self._write(
                _response(404, _error(404, f"model {model!r} not served", "not_found_error"))
            )
            return
        if path == b"/v1/embeddings":
            await self._sleep(cfg.latency)
            inputs = body.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(n)
            ]
            self._write(
                _response(
                    200,
                    orjson.dumps(
                        {
                            "object": "list",
                            "data": data,
                            "model": model,
                            "usage": {"prompt_tokens": n, "total_tokens": n},
                        }
                    ),
                )
            )
            return
        chat = path == b"/v1/chat/completions"
        if not chat and path != b"/v1/completions":
            self._write(_response(404, _error(404, "no such endpoint", "not_found_error")))
            return
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        if limit is not None and (type(limit) is not int or limit < 1):
            self._write(
                _response(
                    400,
                    _error(400, "max_tokens must be a positive integer", "invalid_request_error"),
                )
            )
            return
        if body.get("stream"):
            await self._stream(chat, model, body)
        else:
            await self._complete(chat, model, body)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _tokens(self, body: dict[str, Any]) -> list[str]:
        """``tok0 tok1 ...``; a continuation request resumes after the tokens it already has."""
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or self.config.chunks
        start = 0
        messages = body.get("messages")
        if isinstance(messages, list) and len(messages) >= 2:
            previous = messages[-2]
            if isinstance(previous, dict) and previous.get("role") == "assistant":
                start = str(previous.get("content") or "").count("tok")
        elif isinstance(body.get("prompt"), str):
            start = body["prompt"].count("tok")
        end = min(start + int(limit), self.config.chunks)
        return [f"tok{i} " for i in range(start, end)]

    async def _complete(self, chat: bool, model: str, body: dict[str, Any]) -> None:
        cfg = self.config
        await self._sleep(cfg.latency)
        if cfg.mode == "die_midstream":
            self._close()
            return
        text = "".join(self._tokens(body))
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": len(self._tokens(body)),
            "total_tokens": 5 + len(self._tokens(body)),
        }
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
            obj = "text_completion"
        self._write(
            _response(
                200,
                orjson.dumps(
                    {
                        "id": "cmpl-mock",
                        "object": obj,
                        "created": int(time.time()),
                        "model": model,
                        "choices": [choice],
                        "usage": usage,
                    }
                ),
            )
        )

    async def _stream(self, chat: bool, model: str, body: dict[str, Any]) -> None:
        cfg = self.config
        obj = "chat.completion.chunk" if chat else "text_completion"
        created = int(time.time())

        def event(choice: dict[str, Any]) -> bytes:
            payload = {
                "id": "cmpl-mock",
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
            }
            return _chunk(b"data: " + orjson.dumps(payload) + b"\n\n")

        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        await self._sleep(cfg.latency)
        if chat:
            self._write(
                event(
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                )
            )
        for i, token in enumerate(self._tokens(body)):
            if cfg.mode == "die_midstream" and i >= cfg.die_after:
                self._close()
                return
            if cfg.mode == "error_midstream" and i >= cfg.die_after:
                error = _error(500, "mock generation failed", "api_error")
                self._write(
                    _chunk(b"data: " + error + b"\n\n") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
                )
                return
            delta = (
                {"index": 0, "delta": {"content": token}, "finish_reason": None}
                if chat
                else {"index": 0, "text": token, "finish_reason": None}
            )
            self._write(event(delta))
            await self._sleep(cfg.chunk_delay)
        final = (
            {"index": 0, "delta": {}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": "", "finish_reason": "stop"}
        )
        self._write(event(final) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    async def _anthropic(self, path: bytes, raw: bytes, headers: dict[bytes, bytes]) -> None:
        """Anthropic's native Messages API."""
        cfg = self.config
        cfg.counts[path.decode()] += 1
        cfg.headers = headers
        if path != b"/v1/messages":
            self._write(_response(404, providers.anthropic_error(404, "not found")))
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._write(_response(400, providers.anthropic_error(400, "invalid JSON")))
            return
        model = str(body.get("model") or "")
        cfg.models.append(model)
        status = {"error500": 500, "error429": 429, "error503": 529, "loading": 529}.get(cfg.mode)
        if status is not None:
            self._write(_response(status, providers.anthropic_error(status, f"mock {cfg.mode}")))
            return
        tokens = self._tokens(providers.anthropic_prompt(body))
        await self._sleep(cfg.latency)
        if not body.get("stream"):
            if cfg.mode == "die_midstream":
                self._close()
                return
            self._write(_response(200, providers.anthropic_message(model, tokens)))
            return
        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        self._write(_chunk(providers.anthropic_start(model)))
        for i, token in enumerate(tokens):
            if cfg.mode == "die_midstream" and i >= cfg.die_after:
                self._close()
                return
            self._write(_chunk(providers.anthropic_delta(token)))
            await self._sleep(cfg.chunk_delay)
        self._write(_chunk(providers.anthropic_end(len(tokens))) + b"0\r\n\r\n")

    def _control(self, method: bytes, path: bytes, raw: bytes) -> None:
        if path == b"/_mock/config" and method == b"POST":
            try:
                self.config.update(orjson.loads(raw))
            except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                self._write(_response(400, _error(400, str(exc), "invalid_request_error")))
                return
            self._write(_response(200, b'{"ok":true}'))
        elif path == b"/_mock/stats":
            self._write(_response(200, orjson.dumps(dict(self.config.counts))))
        else:
            self._write(_response(404, _error(404, "no such control", "not_found_error")))


class MockServer:
    """A mock backend on ``host:port``; ``config`` may be changed while it runs."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self._server: asyncio.Server | None = None
        self._handlers: set[_Handler] = set()

    def _factory(self) -> _Handler:
        handler = _Handler(self.config)
        self._handlers.add(handler)
        return handler

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, host, port, backlog=1024, ssl=tls)
        return int(self._server.sockets[0].getsockname()[1])

    def drop_connections(self) -> None:
        for handler in self._handlers:
            handler._close()
        self._handlers.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.wait_closed()
            self._server = None


class ThreadedMock:
    """A ``MockServer`` on its own event loop in a thread (tests: no subprocess start-up)."""

    def __init__(
        self, config: MockConfig | None = None, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.server = MockServer(config)
        self.config = self.server.config
        self._port = port
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def root(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def start(self) -> ThreadedMock:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(
            self.server.start(port=self._port, tls=self._tls), self._loop
        ).result(5)
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection (like a killed process)."""
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(5)

    def restart(self) -> None:
        asyncio.run_coroutine_threadsafe(
            self.server.start(port=self.port, tls=self._tls), self._loop
        ).result(5)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def mock_command(port: int, *options: str) -> list[str]:
    """The command line that runs this mock on ``port`` with ``options`` (``--latency 0.05``)."""
    return [sys.executable, "-m", "testkit.mock_openai", "--port", str(port), *options]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testkit.mock_openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--model", default=None)
    parser.add_argument("--flavour", choices=providers.FLAVOURS, default="openai")
    parser.add_argument("--key", default=None)
    parser.add_argument("--tls-cert", default=None)
    parser.add_argument("--tls-key", default=None)
    args = parser.parse_args()
    config = MockConfig(
        mode=args.mode,
        latency=args.latency,
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        model=args.model,
        flavour=args.flavour,
        key=args.key,
    )
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    async def run() -> None:
        server = MockServer(config)
        await server.start(args.host, args.port, tls)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
