"""Gateway test fixtures: mock backends in threads, the gateway on a real port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import GatewayConfig, parse
from gateway.settings import GatewaySettings
from p2.core import litellm_config
from p2.core.keys import KeySettings
from testkit.mock_openai import MockConfig, ThreadedMock
from testkit.threadserver import ThreadServer

KEY = "sk-test-gateway-key"
ADMIN_KEY = "sk-test-gateway-admin"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
KEY_FIELDS = ("api_keys", "api_keys_file", "admin_keys", "admin_keys_file", "service_key")


def make_config(groups: dict[str, list[tuple[str, str]]], **router: Any) -> GatewayConfig:
    """``{"chat": [(api_base, served_model), ...]}`` in priority order → a config."""
    return parse(
        litellm_config.config(
            [
                litellm_config.deployment(group, base, model, order)
                for group, backends in groups.items()
                for order, (base, model) in enumerate(backends, start=1)
            ],
            router,
        )
    )


@dataclass
class RunningGateway:
    url: str
    app: Starlette

    @property
    def base(self) -> str:
        return f"{self.url}/v1"


@contextmanager
def running_gateway(
    config: GatewayConfig, uvicorn_options: dict[str, Any] | None = None, **overrides: Any
) -> Iterator[RunningGateway]:
    """The gateway on ``config``; ``overrides`` are GatewaySettings and KeySettings fields."""
    values: dict[str, Any] = {
        "api_keys": KEY,
        "admin_keys": ADMIN_KEY,
        "probe_interval": 0.2,
        "probe_timeout": 0.2,
        "first_byte_timeout": 0.5,
        "request_timeout": 20.0,
        "stream_idle_timeout": 5.0,
    }
    values.update(overrides)
    keys = KeySettings.build(**{name: values.pop(name) for name in KEY_FIELDS if name in values})
    app = create_app(GatewaySettings.build(**values), config, keys=keys)
    options: dict[str, Any] = {
        "http": "httptools",
        "loop": "uvloop",
        "timeout_graceful_shutdown": 1,
    }
    options.update(uvicorn_options or {})
    with ThreadServer(app, **options) as server:
        yield RunningGateway(server.url, app)


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
