"""The gateway in front of two real inference servers (llama.cpp on the tiny GGUF)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningServer, start_inference, stop
from tests.gateway.conftest import KEY, RunningGateway, make_config, running_gateway

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def servers(tiny_gguf: Path, p2_home: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    chat = start_inference(p2_home, model=tiny_gguf, role="chat")
    code = start_inference(p2_home, model=tiny_gguf, role="code")
    try:
        yield chat, code
    finally:
        stop(chat)
        stop(code)


@pytest.fixture(scope="module")
def gateway(servers: tuple[RunningServer, RunningServer]) -> Iterator[RunningGateway]:
    chat, code = servers
    config = make_config(
        {
            "chat": [(f"{chat.url}/v1", "chat"), (f"{code.url}/v1", "code")],
            "code": [(f"{code.url}/v1", "code"), (f"{chat.url}/v1", "chat")],
        }
    )
    with running_gateway(
        config, first_byte_timeout=5.0, stream_idle_timeout=30.0, request_timeout=60.0
    ) as running:
        yield running


def kill(server: RunningServer) -> None:
    proc = server.proc
    assert isinstance(proc, subprocess.Popen)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_sdk_through_gateway_to_real_servers(gateway: RunningGateway) -> None:
    sdk = openai.OpenAI(base_url=gateway.base, api_key=KEY, max_retries=0, timeout=60)
    reply = sdk.chat.completions.create(
        model="code", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
    stream = sdk.completions.create(model="chat", prompt="the", max_tokens=8, stream=True)
    assert [c for c in stream]


def test_kill_chat_server_mid_stream_client_gets_one_complete_stream(
    gateway: RunningGateway, servers: tuple[RunningServer, RunningServer]
) -> None:
    chat, _ = servers
    body = {
        "model": "chat",
        "stream": True,
        "max_tokens": 400,
        "temperature": 0,
        "messages": [{"role": "user", "content": "the"}],
    }
    events: list[bytes] = []
    killed = False
    with httpx.stream(
        "POST", f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            events.append(line[6:].encode())
            if not killed and len(events) >= 4:
                kill(chat)
                killed = True
    assert killed, "the stream ended before the chat server could be killed"
    assert events[-1] == b"[DONE]" and events.count(b"[DONE]") == 1
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c]
    assert len({c["id"] for c in chunks}) == 1
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] in (["stop"], ["length"])
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert "p2_gateway_stream_continuations_total" in metrics
    assert 'outcome="continued"' in metrics


def test_both_servers_stopped_clean_error_no_hang(
    gateway: RunningGateway, servers: tuple[RunningServer, RunningServer]
) -> None:
    for server in servers:
        stop(server)
    sdk = openai.OpenAI(base_url=gateway.base, api_key=KEY, max_retries=0, timeout=30)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 503
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert time.monotonic() - started < 15
