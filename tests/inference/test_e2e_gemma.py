"""End to end on the real default model: Gemma 3 270M from its PyPI package."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from testkit.openai_errors import assert_openai_error
from tests.conftest import RunningServer, start_inference, stop
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, list[int]]]:
    home = tmp_path_factory.mktemp("gemma-home")
    server = start_inference(home, model=None, wait=False)
    seen: list[int] = []
    deadline = time.monotonic() + 300
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                status = client.get(f"{server.url}/health").status_code
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == 200:
                break
            time.sleep(0.02)
    yield server, seen
    stop(server)


def test_health_is_503_while_loading_then_200(gemma: tuple[RunningServer, list[int]]) -> None:
    _, seen = gemma
    assert seen == [503, 200]


def test_chat_answers_with_text_through_the_openai_sdk(
    gemma: tuple[RunningServer, list[int]],
) -> None:
    server, _ = gemma
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    text = reply.choices[0].message.content or ""
    assert text.strip()
    assert "<end_of_turn>" not in text
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Say hi."}], max_tokens=16, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces).strip()


def test_stream_ends_with_done_and_metrics_move(gemma: tuple[RunningServer, list[int]]) -> None:
    server, _ = gemma
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 20,
        "stream": True,
    }
    with server.client() as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            stream = parse_sse(list(response.iter_lines()))
        metrics = client.get("/metrics").text
    assert stream.done and stream.text()
    generated = [
        line
        for line in metrics.splitlines()
        if line.startswith("p2_inference_generated_tokens_total")
    ]
    assert generated and float(generated[0].split()[-1]) > 0


def test_a_broken_model_file_keeps_health_503_with_the_reason(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = server_factory(model=bad, wait=False)
    deadline = time.monotonic() + 60
    body: dict[str, object] = {}
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{server.url}/health")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            body = response.json()
            error = body.get("error")
            if isinstance(error, dict) and error.get("code") == "failed":
                break
            time.sleep(0.05)
        chat = client.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
    assert_openai_error(response, 503, code="failed", contains="failed to load")
    assert_openai_error(chat, 503, code="model_loading", contains="failed to load")
