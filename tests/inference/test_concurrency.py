"""Concurrency: no mixed outputs, a bounded queue that refuses fast, disconnects free the model."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.openai_errors import assert_openai_error
from tests.conftest import RunningServer
from tests.inference.conftest import ENGINES, require_engine
from tests.sse import Stream, parse_sse

PROMPTS = [f"the {word} is" for word in ("cat", "dog", "sun", "sea", "car", "map", "key", "box")]


async def _stream(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> Stream:
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
    }
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        return parse_sse([line async for line in response.aiter_lines()])


@pytest.mark.parametrize("engine", ENGINES)
async def test_eight_concurrent_streams_complete_without_mixing(
    engine: str, server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    require_engine(engine)
    server = server_factory(model=tiny_gguf, engine=engine, env={"CHAT_CTX_SIZE": "512"})
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        alone = [await _stream(client, p, 24) for p in PROMPTS]
        together = await asyncio.gather(*(_stream(client, p, 24) for p in PROMPTS))
    for single, concurrent in zip(alone, together, strict=True):
        assert concurrent.done and not concurrent.errors
        assert len(concurrent.finish_reasons()) == 1
        if engine == "llama-cpp":  # one sequence at a time: bit-exact
            assert concurrent.text() == single.text()
    ids = {s.chunks[0]["id"] for s in together}
    assert len(ids) == len(PROMPTS)


async def test_burst_beyond_queue_bound_gets_prompt_503(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    server = server_factory(
        model=tiny_gguf, env={"CHAT_CTX_SIZE": "2048", "CHAT_MAX_QUEUE": "2", "CHAT_PARALLEL": "1"}
    )
    finished: list[tuple[int, float]] = []

    async def call(client: httpx.AsyncClient) -> httpx.Response:
        body = {"prompt": "the", "max_tokens": 1500, "ignore_eos": True}
        response = await client.post("/v1/completions", json=body)
        finished.append((response.status_code, time.monotonic()))
        return response

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        responses = await asyncio.gather(*(call(client) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1
    assert statuses.count(503) >= 5  # one running + two queued at most
    assert set(statuses) <= {200, 503}
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert_openai_error(response, 503, code="queue_full")
    first_ok = min(t for s, t in finished if s == 200)
    assert all(t < first_ok for s, t in finished if s == 503)  # refused before any finished


async def test_client_disconnect_mid_stream_frees_the_model(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    server = server_factory(model=tiny_gguf, env={"CHAT_CTX_SIZE": "2048", "CHAT_PARALLEL": "1"})
    body = {"prompt": "the", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        async with client.stream("POST", "/v1/completions", json=body) as response:
            async for _ in response.aiter_lines():
                break  # hang up after the first event
        # The next request is served, and the abandoned one stopped early.
        ok = await client.post("/v1/completions", json={"prompt": "the", "max_tokens": 3})
        assert ok.status_code == 200
        metrics = (await client.get("/metrics")).text

    def metric(name: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name)
        )

    # Tokens of the abandoned generation are counted too: it stopped early.
    assert metric("p2_inference_generated_tokens_total") < 2000
    assert metric("p2_inference_cancelled_requests_total") == 1


def test_llama_server_death_turns_health_to_503(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    require_engine("llama-server")
    server = server_factory(model=tiny_gguf, engine="llama-server", env={"CHAT_CTX_SIZE": "512"})
    child = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid), "-f", "llama-server"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    os.kill(int(child), signal.SIGKILL)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = client.get("/health")
            if health.status_code == 503:
                break
            time.sleep(0.05)
    assert_openai_error(health, 503, code="failed", contains="llama-server exited")
