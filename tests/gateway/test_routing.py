"""Load balancing within an order, limits, fallbacks across groups, aliases and wildcards,
against real local backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.config import GatewayConfig, parse
from testkit.mock_openai import MockConfig, ThreadedMock
from tests.gateway.conftest import AUTH, RunningGateway, running_gateway
from tests.gateway.upstreams import ScriptedBackend, error, serve

CHAT = "/v1/chat/completions"


def ask(gateway: RunningGateway, model: str, text: str = "hi", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=10)


def entry(group: str, api_base: str, model: str = "m", **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "api_base": api_base, **params},
    }


def config_of(*entries: dict[str, Any], **router: Any) -> GatewayConfig:
    return parse({"model_list": list(entries), "router_settings": router}, environ={})


@pytest.fixture
def pair() -> Iterator[tuple[ThreadedMock, ThreadedMock]]:
    mocks = [ThreadedMock(MockConfig(chunks=6, chunk_delay=0.25)).start() for _ in range(2)]
    try:
        yield mocks[0], mocks[1]
    finally:
        for mock in mocks:
            mock.close()


def served(mock: ThreadedMock) -> int:
    return mock.config.counts[CHAT]


def test_weighted_shuffle_shares_requests_by_weight(pair: tuple[ThreadedMock, ...]) -> None:
    heavy, light = pair
    config = config_of(entry("chat", heavy.url, weight=3), entry("chat", light.url, weight=1))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    with running_gateway(config) as gateway, httpx.Client(headers=AUTH, timeout=10) as client:
        for _ in range(400):
            response = client.post(f"{gateway.base}/chat/completions", json=body)
            assert response.status_code == 200
    share = served(heavy) / (served(heavy) + served(light))
    assert 0.67 <= share <= 0.83, share  # 0.75 +- 3.5 standard deviations


def test_lower_order_still_wins_over_weight(pair: tuple[ThreadedMock, ...]) -> None:
    first, second = pair
    config = config_of(
        entry("chat", first.url, weight=1, order=1), entry("chat", second.url, weight=100, order=2)
    )
    with running_gateway(config) as gateway:
        for _ in range(20):
            assert ask(gateway, "chat").status_code == 200
    assert (served(first), served(second)) == (20, 0)


def hold_stream(gateway: RunningGateway, model: str) -> tuple[threading.Thread, threading.Event]:
    """A slow stream (1.5 s) in a thread; the event is set once its first bytes arrived."""
    flowing = threading.Event()

    def run() -> None:
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream(
            "POST", f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=10
        ) as response:
            for _ in response.iter_bytes():
                flowing.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert flowing.wait(5)
    return thread, flowing


def test_least_busy_avoids_the_deployment_with_a_request_in_flight(
    pair: tuple[ThreadedMock, ...],
) -> None:
    a, b = pair
    config = config_of(entry("chat", a.url), entry("chat", b.url), routing_strategy="least-busy")
    with running_gateway(config) as gateway:
        thread, _ = hold_stream(gateway, "chat")
        busy, idle = (a, b) if served(a) else (b, a)
        for _ in range(10):
            assert ask(gateway, "chat").status_code == 200
        thread.join()
    assert (served(busy), served(idle)) == (1, 10)


def test_max_parallel_requests_limit_answers_429(pair: tuple[ThreadedMock, ...]) -> None:
    a, _ = pair
    config = config_of(entry("chat", a.url, max_parallel_requests=1))
    with running_gateway(config) as gateway:
        thread, _ = hold_stream(gateway, "chat")
        response = ask(gateway, "chat")
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.headers["retry-after"] == "1"
        thread.join()
        assert ask(gateway, "chat").status_code == 200  # the stream ended: room again


def test_rpm_limit_moves_on_then_answers_429(pair: tuple[ThreadedMock, ...]) -> None:
    a, b = pair
    config = config_of(entry("chat", a.url, rpm=2), entry("chat", b.url, rpm=1, order=2))
    with running_gateway(config) as gateway:
        statuses = [ask(gateway, "chat").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert (served(a), served(b)) == (2, 1)


@pytest.fixture
def small() -> Iterator[ScriptedBackend]:
    backend = ScriptedBackend(model="small")
    backend.scripted["long"] = error(
        400, "This model's maximum context length is 8 tokens.", "context_length_exceeded"
    )
    backend.scripted["bad"] = error(400, "temperature is out of range")
    backend.scripted["forbidden"] = error(400, "refused by policy", "content_policy_violation")
    server = serve(backend)
    try:
        yield backend
    finally:
        server.stop()


def test_context_window_fallback_goes_to_the_larger_group(
    small: ScriptedBackend, pair: tuple[ThreadedMock, ...]
) -> None:
    big, other = pair
    config = config_of(
        entry("small", small.url, "small"),
        entry("big", big.url),
        entry("other", other.url),
        context_window_fallbacks=[{"small": ["big"]}],
        fallbacks=[{"small": ["other"]}],
    )
    with running_gateway(config) as gateway:
        assert ask(gateway, "small", "long").status_code == 200
        assert (served(big), served(other)) == (1, 0)
        refused = ask(gateway, "small", "bad")  # the client's own 400: relayed, no fallback
        assert refused.status_code == 400
        assert (served(big), served(other)) == (1, 0)


def test_content_policy_fallback(small: ScriptedBackend, pair: tuple[ThreadedMock, ...]) -> None:
    lenient, other = pair
    config = config_of(
        entry("small", small.url, "small"),
        entry("lenient", lenient.url),
        entry("other", other.url),
        content_policy_fallbacks=[{"small": ["lenient"]}],
        context_window_fallbacks=[{"small": ["other"]}],
    )
    with running_gateway(config) as gateway:
        assert ask(gateway, "small", "forbidden").status_code == 200
    assert (served(lenient), served(other)) == (1, 0)


def test_context_length_without_its_fallback_is_relayed(small: ScriptedBackend) -> None:
    mock = ThreadedMock(MockConfig()).start()
    try:
        config = config_of(
            entry("small", small.url, "small"),
            entry("other", mock.url),
            fallbacks=[{"small": ["other"]}],
        )
        with running_gateway(config) as gateway:
            response = ask(gateway, "small", "long")
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "context_length_exceeded"
        assert served(mock) == 0
    finally:
        mock.close()


def test_fallbacks_after_a_failed_group(pair: tuple[ThreadedMock, ...]) -> None:
    down, backup = pair
    down.config.mode = "error503"
    config = config_of(
        entry("primary", down.url),
        entry("backup", backup.url),
        fallbacks=[{"primary": ["backup"]}],
    )
    with running_gateway(config) as gateway:
        assert ask(gateway, "primary").status_code == 200
    assert served(backup) == 1


def test_default_fallbacks_serve_groups_without_their_own(
    pair: tuple[ThreadedMock, ...],
) -> None:
    down, backup = pair
    down.config.mode = "error500"
    config = config_of(
        entry("primary", down.url), entry("backup", backup.url), default_fallbacks=["backup"]
    )
    with running_gateway(config) as gateway:
        assert ask(gateway, "primary").status_code == 200
    assert served(backup) == 1


def test_model_group_alias_serves_and_lists_the_alias(pair: tuple[ThreadedMock, ...]) -> None:
    a, _ = pair
    config = config_of(
        entry("chat", a.url, "served-name"),
        model_group_alias={"gpt-4": "chat", "secret": {"model": "chat", "hidden": True}},
    )
    with running_gateway(config) as gateway:
        for name in ("gpt-4", "secret"):
            response = ask(gateway, name)
            assert response.status_code == 200, response.text
            assert response.json()["model"] == name
        listed = httpx.get(f"{gateway.base}/models", headers=AUTH).json()["data"]
        assert [m["id"] for m in listed] == ["chat", "gpt-4"]
    assert a.config.models == ["served-name", "served-name"]


def test_wildcard_groups_fill_the_requested_name(pair: tuple[ThreadedMock, ...]) -> None:
    anything, groq = pair
    config = config_of(
        entry("*", anything.url, "openai/*"),
        entry("groq/*", groq.url, "groq/*"),
        entry("chat", anything.url, "chat-model"),
    )
    with running_gateway(config) as gateway:
        for name in ("some-model", "groq/llama-3", "chat"):
            response = ask(gateway, name)
            assert response.status_code == 200, response.text
            assert response.json()["model"] == name
        listed = httpx.get(f"{gateway.base}/models", headers=AUTH).json()["data"]
        assert [m["id"] for m in listed] == ["chat"]
    assert anything.config.models == ["some-model", "chat-model"]
    assert groq.config.models == ["llama-3"]


def test_plain_group_pays_nothing_for_strategies(pair: tuple[ThreadedMock, ...]) -> None:
    """One deployment per order and no limits: the prepared tuple, nothing counted."""
    a, b = pair
    config = config_of(entry("chat", a.url), entry("chat", b.url, order=2))
    with running_gateway(config) as gateway:
        registry = gateway.app.state.registry
        assert registry.candidates("chat") is registry.groups["chat"]
        assert ask(gateway, "chat").status_code == 200
        assert not any(d.track or d.requests for d in registry.groups["chat"])


def test_latency_based_routing_prefers_the_faster_replica(
    pair: tuple[ThreadedMock, ...],
) -> None:
    slow, fast = pair
    slow.config.latency = 0.2
    config = config_of(
        entry("chat", slow.url), entry("chat", fast.url), routing_strategy="latency-based-routing"
    )
    with running_gateway(config) as gateway:
        for _ in range(12):
            assert ask(gateway, "chat").status_code == 200
    assert served(slow) <= 1 and served(fast) >= 11
