"""Health checks that fail while a backend is busy, not hung: its streams are never cut."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.conftest import ADMIN, AUTH, RunningGateway, make_config, running_gateway
from tests.gateway.upstreams import ScriptedBackend, serve

PATH = "/v1/chat/completions"
TOKENS = 30


@pytest.fixture
def pair() -> Iterator[tuple[ScriptedBackend, ScriptedBackend]]:
    primary = ScriptedBackend(model="chat", chunks=TOKENS, chunk_delay=0.05)  # a 1.5 s stream
    secondary = ScriptedBackend(model="code")
    servers = [serve(primary), serve(secondary)]
    try:
        yield primary, secondary
    finally:
        for server in servers:
            server.stop()


def gateway_for(
    pair: tuple[ScriptedBackend, ScriptedBackend], **overrides: Any
) -> AbstractContextManager[RunningGateway]:
    primary, secondary = pair
    config = make_config({"chat": [(primary.url, "chat"), (secondary.url, "code")]})
    return running_gateway(config, **overrides)


def primary_state(gateway: RunningGateway) -> dict[str, object]:
    ready = httpx.get(f"{gateway.url}/health/ready", headers=ADMIN).json()
    state: dict[str, object] = ready["backends"]["chat"][0]
    return state


def stream_while_health_is_slow(
    gateway: RunningGateway, primary: ScriptedBackend
) -> tuple[str, list[dict[str, object]]]:
    """One stream through the gateway; /health turns slow once it flows. Returns the
    text and the primary's state as seen during the stream."""
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    text, seen = [], []
    with httpx.stream(
        "POST", f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=20
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            primary.health_delay = 1.0  # busy: /health answers late from now on
            chunk = orjson.loads(line[6:])
            text.append(chunk["choices"][0]["delta"].get("content") or "")
            if len(text) % 5 == 0:
                seen.append(primary_state(gateway))
    primary.health_delay = 0.0
    return "".join(text), seen


def test_slow_health_while_streaming_keeps_the_backend_and_its_stream(
    pair: tuple[ScriptedBackend, ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    primary, secondary = pair
    caplog.set_level(logging.INFO, logger="p2.gateway.backends")
    with gateway_for(pair, probe_failures=50) as gw:
        text, seen = stream_while_health_is_slow(gw, primary)
    assert "but its streams flow; kept in rotation" in caplog.text  # checks did fail
    assert text == "".join(f"tok{i} " for i in range(TOKENS))
    assert all(state["in_rotation"] is True for state in seen)
    assert secondary.calls[PATH] == 0  # never continued elsewhere


def test_checks_failing_in_a_row_eject_but_never_cut_a_flowing_stream(
    pair: tuple[ScriptedBackend, ScriptedBackend],
) -> None:
    primary, secondary = pair
    with gateway_for(pair, probe_failures=2) as gw:
        text, seen = stream_while_health_is_slow(gw, primary)
    assert text == "".join(f"tok{i} " for i in range(TOKENS))  # all from the primary
    assert seen[-1]["in_rotation"] is False  # out for new requests
    assert secondary.calls[PATH] == 0


def test_a_backend_silent_on_every_exchange_is_ejected_at_once(
    pair: tuple[ScriptedBackend, ScriptedBackend],
) -> None:
    primary, secondary = pair
    with gateway_for(pair, probe_failures=50, first_byte_timeout=0.3, probe_interval=60) as gw:
        primary.reply_delay, primary.health_delay = 10.0, 10.0  # hung: no bytes anywhere
        started = time.monotonic()
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{gw.base}/chat/completions", json=body, headers=AUTH, timeout=20)
        assert response.status_code == 200
        assert time.monotonic() - started < 3
        assert primary_state(gw)["in_rotation"] is False
    assert secondary.calls[PATH] == 1
    assert primary.closed.wait(5)  # its stalled exchange was dropped


def test_a_slow_answer_waits_while_the_backends_streams_flow(
    pair: tuple[ScriptedBackend, ScriptedBackend],
) -> None:
    primary, secondary = pair
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    texts: list[str] = []

    def stream(gateway: RunningGateway) -> None:
        with httpx.stream(
            "POST",
            f"{gateway.base}/chat/completions",
            json={**chat, "stream": True},
            headers=AUTH,
            timeout=20,
        ) as response:
            texts.append(response.read().decode())

    with gateway_for(pair, probe_failures=50, first_byte_timeout=0.3, probe_interval=60) as gw:
        streaming = threading.Thread(target=stream, args=(gw,))
        streaming.start()
        while primary.calls[PATH] == 0:
            time.sleep(0.01)
        primary.health_delay, primary.reply_delay = 1.0, 1.0  # busy: late /health, slow answer
        response = httpx.post(f"{gw.base}/chat/completions", json=chat, headers=AUTH, timeout=20)
        streaming.join(20)
    assert response.status_code == 200
    assert primary.calls[PATH] == 2 and secondary.calls[PATH] == 0  # waited for, not failed over
    assert texts and texts[0].count("tok") == TOKENS
