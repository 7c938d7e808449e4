"""Gateway test fixtures: mock backends in threads, the gateway on a real port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import GatewayConfig, parse
from gateway.settings import GatewaySettings
from p2.bench.mock_openai import MockConfig, ThreadedMock
from p2.core.process import free_port

KEY = "sk-test-gateway-key"


def make_config(groups: dict[str, list[tuple[str, str]]], **router: Any) -> GatewayConfig:
    """``{"chat": [(api_base, served_model), ...]}`` in priority order → a config."""
    model_list = [
        {
            "model_name": group,
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": base,
                "api_key": "none",
                "order": i + 1,
            },
        }
        for group, backends in groups.items()
        for i, (base, model) in enumerate(backends)
    ]
    return parse({"model_list": model_list, "router_settings": router})


@dataclass
class RunningGateway:
    url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base(self) -> str:
        return f"{self.url}/v1"


@contextmanager
def running_gateway(config: GatewayConfig, **overrides: Any) -> Iterator[RunningGateway]:
    values: dict[str, Any] = {
        "api_keys": KEY,
        "probe_interval": 0.2,
        "probe_timeout": 0.2,
        "first_byte_timeout": 0.5,
        "request_timeout": 20.0,
        "stream_idle_timeout": 5.0,
    }
    values.update(overrides)
    settings = GatewaySettings(**values)
    app = create_app(settings, config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            http="httptools",
            loop="uvloop",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", app, server, thread)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def mocks() -> Iterator[tuple[ThreadedMock, ThreadedMock]]:
    """Two mock backends serving ``chat`` and ``code``, like the two inference servers."""
    primary = ThreadedMock(MockConfig(model="chat")).start()
    secondary = ThreadedMock(MockConfig(model="code")).start()
    try:
        yield primary, secondary
    finally:
        primary.close()
        secondary.close()


@pytest.fixture
def config(mocks: tuple[ThreadedMock, ThreadedMock]) -> GatewayConfig:
    primary, secondary = mocks
    return make_config(
        {
            "chat": [(primary.url, "chat"), (secondary.url, "code")],
            "code": [(secondary.url, "code"), (primary.url, "chat")],
        },
        num_retries=0,
        timeout=20,
        allowed_fails=3,
        cooldown_time=30,
    )


@pytest.fixture
def gateway(config: GatewayConfig) -> Iterator[RunningGateway]:
    with running_gateway(config) as running:
        yield running
