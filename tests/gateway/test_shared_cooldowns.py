"""Cooldowns shared between gateway instances through a real Redis server (``REDIS_URL``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from p2.core.process import free_port
from testkit.mock_openai import ThreadedMock
from tests.gateway.conftest import ADMIN, AUTH, make_config, running_gateway

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def redis_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(5)


def ask(base: str) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{base}/chat/completions", json=body, headers=AUTH, timeout=10).status_code


def test_a_cooldown_in_one_instance_holds_in_the_other(
    redis_url: str, mocks: tuple[ThreadedMock, ThreadedMock]
) -> None:
    primary, secondary = mocks
    config = make_config(
        {"chat": [(primary.url, "chat"), (secondary.url, "code")]},
        allowed_fails=0,
        cooldown_time=30,
    )
    primary.config.mode = "error503"
    with (
        running_gateway(config, redis_url=redis_url) as one,
        running_gateway(config, redis_url=redis_url) as other,
    ):
        assert ask(one.base) == 200  # the primary's 503 cools it down, the secondary answers
        primary.config.mode = "ok"
        time.sleep(0.6)  # a few sync intervals
        state = httpx.get(f"{other.url}/health/ready", headers=ADMIN).json()
        assert state["backends"]["chat"][0]["state"] == "cooldown"
        assert ask(other.base) == 200
    assert primary.config.counts["/v1/chat/completions"] == 1
    assert secondary.config.counts["/v1/chat/completions"] == 2


def test_without_redis_cooldowns_are_per_instance(mocks: tuple[ThreadedMock, ThreadedMock]) -> None:
    primary, secondary = mocks
    config = make_config(
        {"chat": [(primary.url, "chat"), (secondary.url, "code")]},
        allowed_fails=0,
        cooldown_time=30,
    )
    primary.config.mode = "error503"
    with running_gateway(config) as one, running_gateway(config) as other:
        assert ask(one.base) == 200
        primary.config.mode = "ok"
        assert ask(other.base) == 200
    assert primary.config.counts["/v1/chat/completions"] == 2
