"""A stream that dies after tool-call deltas ends with an error event: never continued
elsewhere (another backend would repeat or garble the calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.config import parse
from testkit.mock_openai import MockConfig, ThreadedMock
from testkit.threadserver import ThreadServer
from tests.gateway.conftest import AUTH, running_gateway


def chunk(delta: dict[str, Any]) -> bytes:
    payload = {
        "id": "t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class DiesAfter:
    """Streams ``deltas`` and then breaks the connection off."""

    def __init__(self, deltas: list[dict[str, Any]]) -> None:
        self.deltas = deltas

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for delta in self.deltas:
            await send({"type": "http.response.body", "body": chunk(delta), "more_body": True})
        raise RuntimeError("the backend died mid-stream")


@pytest.fixture
def spare() -> Iterator[ThreadedMock]:
    mock = ThreadedMock(MockConfig()).start()
    try:
        yield mock
    finally:
        mock.close()


def stream_through(first: DiesAfter, spare: ThreadedMock) -> list[str]:
    server = ThreadServer(first, timeout_graceful_shutdown=1).start()
    try:
        config = parse(
            {
                "model_list": [
                    {"model_name": "m", "litellm_params": {"model": "m", "api_base": server.url}},
                    {
                        "model_name": "m",
                        "litellm_params": {"model": "m", "api_base": spare.url, "order": 2},
                    },
                ]
            },
            environ={},
        )
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with (
            running_gateway(config) as gateway,
            httpx.stream(
                "POST", f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=10
            ) as response,
        ):
            assert response.status_code == 200
            return [line for line in response.iter_lines() if line.startswith("data: ")]
    finally:
        server.stop()


def test_dead_stream_after_tool_calls_ends_with_an_error_event(spare: ThreadedMock) -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get"}}
    lines = stream_through(
        DiesAfter([{"role": "assistant", "content": None}, {"tool_calls": [call]}]), spare
    )
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == "stream_interrupted"
    assert "tool calls" in error["message"]
    assert sum('"tool_calls"' in line for line in lines) == 1  # never repeated
    assert spare.config.counts["/v1/chat/completions"] == 0


def test_dead_text_stream_is_still_continued(spare: ThreadedMock) -> None:
    lines = stream_through(DiesAfter([{"role": "assistant", "content": "tok0 "}]), spare)
    assert lines[-1] == "data: [DONE]"
    assert not any('"error"' in line for line in lines)
    assert spare.config.counts["/v1/chat/completions"] == 1
