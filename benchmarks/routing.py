"""``p2 bench routing``: load balancing within one order, and a context-window fallback.

Backends are small servers with a fixed number of generation slots (like
llama-server's ``--parallel``): a request waits for a free slot, holds it for
the service time, then answers. They run in a thread of this process; P2's
gateway runs as its own process. Three phases:

1. share: two replicas at the same order with weights 3:1 under load
   (concurrency 16); the share of requests the heavier one served.
2. least-busy vs shuffle: two equal replicas with 2 slots each, 20 ms per
   request, 6 concurrent clients (more than the 4 slots): a random choice
   queues requests on a busy replica while the other has a free slot,
   least-busy does not. Ratio of the two p99 latencies (below 1: least-busy
   is better), each strategy on its own gateway.
3. cw-fallback: group ``small`` answers 400 ``context_length_exceeded`` to a
   long prompt; ``context_window_fallbacks`` sends it to group ``big``. OK is
   a 200 answered by ``big``.

Last line: ``routing: share = X.XX (weight 0.75), least-busy p99 / shuffle p99
= Y.YY, cw-fallback ok = N/M``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.stats import percentile, rounded
from gateway.upstream import Pool, UpstreamError
from p2.core.litellm_config import write_config
from p2.core.process import free_port, spawn, terminate, wait_healthy

KEY = "sk-bench-routing"
LONG_PROMPT = "word " * 400
SMALL_CONTEXT = 1000  # characters the ``small`` group accepts


@dataclass
class SlotServer:
    """An OpenAI backend with ``slots`` parallel generations of ``service`` seconds each."""

    model: str
    slots: int = 64
    service: float = 0.0
    max_prompt: int | None = None  # longer prompts get 400 context_length_exceeded
    served: int = 0
    port: int = 0
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.slots)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0, backlog=1024)
        self.port = int(server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def answer(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        if path == b"/health":
            return 200, b'{"status":"ok"}'
        request = orjson.loads(body)
        prompt = "".join(str(m.get("content")) for m in request.get("messages") or [])
        if self.max_prompt is not None and len(prompt) > self.max_prompt:
            error = {
                "message": f"This model's maximum context length is {self.max_prompt}.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            return 400, orjson.dumps({"error": error})
        assert self._slots is not None
        async with self._slots:
            if self.service:
                await asyncio.sleep(self.service)
        self.served += 1
        reply = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, orjson.dumps(reply)


class _Conn(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time (the gateway pools its connections)."""

    def __init__(self, server: SlotServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        self.buf = rest[length:]
        path = head.split(b" ", 2)[1].split(b"?", 1)[0]
        task = asyncio.ensure_future(self._reply(path, rest[:length]))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, path: bytes, body: bytes) -> None:
        status, payload = await self.server.answer(path, body)
        reason = b"OK" if status == 200 else b"Bad Request"
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head % (status, reason, len(payload)) + payload)


class Backends:
    """Slot servers on one event loop in a thread."""

    def __init__(self, *servers: SlotServer) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Backends:
        self.thread.start()
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Gateway:
    """P2's gateway in its own process on a config written from ``data``."""

    def __init__(self, data: dict[str, Any], work: Path, name: str) -> None:
        self.path = work / f"{name}.yaml"
        write_config(self.path, data)
        self.port = free_port()
        self.log = work / f"{name}.log"
        self.proc = spawn(
            [sys.executable, "-m", "gateway", "--config", str(self.path), "--port", str(self.port)],
            env={"P2_API_KEYS": KEY, "P2_LOG_LEVEL": "warning"},
            log_path=self.log,
        )

    def __enter__(self) -> Gateway:
        try:
            wait_healthy(f"http://127.0.0.1:{self.port}/health/ready", timeout=60, proc=self.proc)
        except BaseException:
            terminate(self.proc, grace=5)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        terminate(self.proc, grace=5)


def _entry(group: str, server: SlotServer, **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": f"openai/{server.model}", "api_base": server.url, **params},
    }


async def _load(
    port: int, model: str, prompt: str, concurrency: int, requests: int
) -> list[tuple[int, float]]:
    """``requests`` chat completions at ``concurrency``: (status, seconds) each."""
    pool = Pool(f"http://127.0.0.1:{port}/v1", max_idle=concurrency * 2)
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]})
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    results: list[tuple[int, float]] = []
    left = [requests]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            started = time.monotonic()
            try:
                response = await pool.request(
                    b"POST", "/v1/chat/completions", body, first_byte_timeout=30, extra_headers=auth
                )
                await response.read(30)
                status = response.status
            except UpstreamError:
                status = 0
            results.append((status, time.monotonic() - started))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    pool.close()
    return results


def _share(work: Path, requests: int) -> dict[str, Any]:
    heavy, light = SlotServer("heavy"), SlotServer("light")
    with Backends(heavy, light):
        data = {"model_list": [_entry("chat", heavy, weight=3), _entry("chat", light, weight=1)]}
        with Gateway(data, work, "share") as gateway:
            results = asyncio.run(_load(gateway.port, "chat", "hi", 16, requests))
    errors = sum(1 for status, _ in results if status != 200)
    return {
        "requests": requests,
        "errors": errors,
        "heavy": heavy.served,
        "light": light.served,
        "share": heavy.served / max(1, heavy.served + light.served),
    }


def _p99(work: Path, strategy: str, requests: int) -> dict[str, Any]:
    a, b = SlotServer("a", slots=2, service=0.02), SlotServer("b", slots=2, service=0.02)
    with Backends(a, b):
        data = {
            "model_list": [_entry("chat", a), _entry("chat", b)],
            "router_settings": {"routing_strategy": strategy},
        }
        with Gateway(data, work, strategy) as gateway:
            asyncio.run(_load(gateway.port, "chat", "hi", 6, 60))  # warm-up
            results = asyncio.run(_load(gateway.port, "chat", "hi", 6, requests))
    latencies = [seconds for status, seconds in results if status == 200]
    return {
        "requests": requests,
        "errors": requests - len(latencies),
        "p50_ms": rounded(percentile(latencies, 50) * 1000, 1),
        "p99_ms": rounded(percentile(latencies, 99) * 1000, 1),
        "served": [a.served, b.served],
    }


def _fallback(work: Path, requests: int) -> dict[str, Any]:
    small, big = SlotServer("small", max_prompt=SMALL_CONTEXT), SlotServer("big")
    with Backends(small, big):
        data = {
            "model_list": [_entry("small", small), _entry("big", big)],
            "router_settings": {"context_window_fallbacks": [{"small": ["big"]}]},
        }
        with Gateway(data, work, "fallback") as gateway:
            results = asyncio.run(_load(gateway.port, "small", LONG_PROMPT, 4, requests))
    ok = sum(1 for status, _ in results if status == 200)
    return {"requests": requests, "ok": min(ok, big.served), "big_served": big.served}


def run(*, requests: int = 2000, latency_requests: int = 1500, fallbacks: int = 40) -> None:
    """Run the three phases; print the JSON report, then the summary line."""
    with tempfile.TemporaryDirectory(prefix="p2-bench-routing-") as tmp:
        work = Path(tmp)
        share = _share(work, requests)
        shuffle = _p99(work, "simple-shuffle", latency_requests)
        least_busy = _p99(work, "least-busy", latency_requests)
        fallback = _fallback(work, fallbacks)
    ratio = least_busy["p99_ms"] / shuffle["p99_ms"]
    report = {
        "share": share,
        "simple_shuffle": shuffle,
        "least_busy": least_busy,
        "least_busy_over_shuffle_p99": rounded(ratio),
        "cw_fallback": fallback,
    }
    print(json.dumps(report, indent=1))
    print(
        f"routing: share = {share['share']:.2f} (weight 0.75), "
        f"least-busy p99 / shuffle p99 = {ratio:.2f}, "
        f"cw-fallback ok = {fallback['ok']}/{fallback['requests']}"
    )
