"""Concurrency: no mixed outputs, a bounded queue that refuses fast, hang-ups free the model,
and a huge request harms no one else."""

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


async def _stream(client: httpx.AsyncClient, prompt: str, max_tokens: int, seed: int) -> Stream:
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 1.0,  # sampled: a seed must give the same text, batched or alone
        "seed": seed,
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
        alone = [await _stream(client, p, 24, i) for i, p in enumerate(PROMPTS)]
        together = await asyncio.gather(*(_stream(client, p, 24, i) for i, p in enumerate(PROMPTS)))
    for single, concurrent in zip(alone, together, strict=True):
        assert concurrent.done and not concurrent.errors
        assert len(concurrent.finish_reasons()) == 1
        assert concurrent.text() == single.text()  # same seed, batched with others: same text
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


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
async def test_a_client_that_hangs_up_frees_the_model(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path, stream: bool
) -> None:
    server = server_factory(model=tiny_gguf, env={"CHAT_CTX_SIZE": "2048", "CHAT_PARALLEL": "1"})
    body = {"prompt": "the", "max_tokens": 2000, "ignore_eos": True, "stream": stream}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        if stream:
            async with client.stream("POST", "/v1/completions", json=body) as response:
                async for _ in response.aiter_lines():
                    break  # hang up after the first event
        else:
            with pytest.raises(httpx.ReadTimeout):  # hang up while it generates
                await client.post("/v1/completions", json=body, timeout=0.5)
        # The only slot is free again at once, and the abandoned request stopped early.
        started = time.monotonic()
        ok = await client.post("/v1/completions", json={"prompt": "the", "max_tokens": 3})
        assert ok.status_code == 200
        assert time.monotonic() - started < 10
        metrics = (await client.get("/metrics")).text
    assert _metric(metrics, "p2_inference_generated_tokens_total") < 2000
    assert _metric(metrics, "p2_inference_cancelled_requests_total") == 1


async def test_a_huge_message_is_refused_fast_and_health_keeps_answering(
    tiny_server: RunningServer,
) -> None:
    """3.8 MB of text: a 400 before any tokenizing, while /health answers within 0.5 s."""
    body = {"messages": [{"role": "user", "content": "word " * 760_000}], "max_tokens": 4}
    worst = 0.0
    async with httpx.AsyncClient(base_url=tiny_server.url, timeout=30) as client:
        task = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        async with httpx.AsyncClient(base_url=tiny_server.url, timeout=5) as probe:
            while not task.done():
                started = time.monotonic()
                assert (await probe.get("/health")).status_code == 200
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.02)
        response = await task
        after = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
    assert_openai_error(
        response, 400, code="context_length_exceeded", contains="CHAT_MAX_PROMPT_CHARS"
    )
    assert worst < 0.5
    assert after.status_code == 200


@pytest.mark.llama_server
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


@pytest.mark.llama_server
def test_llama_server_child_refuses_calls_without_its_key(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    """Only P2's front may call the native server: it runs with a random key."""
    require_engine("llama-server")
    server = server_factory(model=tiny_gguf, engine="llama-server", env={"CHAT_CTX_SIZE": "512"})
    child = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid), "-f", "llama-server"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
    port = argv[argv.index(b"--port") + 1].decode()
    body = {"prompt": [1, 5], "n_predict": 2}
    refused = httpx.post(f"http://127.0.0.1:{port}/completion", json=body, timeout=10)
    assert refused.status_code == 401
    assert not [a for a in argv if b"sk-" in a or b"api-key" in a]  # not visible in ps
