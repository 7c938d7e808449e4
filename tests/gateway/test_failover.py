"""Failover with mock backends: what a client must never notice."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import orjson
import pytest

from gateway.config import GatewayConfig
from p2.core.process import free_port
from testkit.mock_openai import ThreadedMock
from testkit.openai_errors import assert_openai_error
from tests.gateway.conftest import ADMIN, AUTH, KEY, RunningGateway, make_config, running_gateway

EXPECTED = "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "
Mocks = tuple[ThreadedMock, ThreadedMock]


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base, api_key=KEY, max_retries=0, timeout=20)


def chat(gateway: RunningGateway) -> str:
    reply = sdk(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content or ""


def stream_events(gateway: RunningGateway, path: str, body: dict[str, object]) -> list[bytes]:
    """The raw SSE data payloads of one streamed request."""
    with httpx.stream(
        "POST", f"{gateway.base}{path}", json={**body, "stream": True}, headers=AUTH, timeout=20
    ) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert all(e.startswith(b"data: ") for e in events)
    return [e[6:] for e in events]


def served(mock: ThreadedMock, path: str = "/v1/chat/completions") -> int:
    return mock.config.counts[path]


def metric(gateway: RunningGateway, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def backend(gateway: RunningGateway, group: str = "chat", index: int = 0) -> dict[str, object]:
    """One backend of a group as an admin sees it in ``/health/ready``."""
    ready = httpx.get(f"{gateway.url}/health/ready", headers=ADMIN).json()
    entry: dict[str, object] = ready["backends"][group][index]
    return entry


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["error500", "error503", "error429", "reset"])
def test_failing_primary_is_invisible(gateway: RunningGateway, mocks: Mocks, mode: str) -> None:
    primary, secondary = mocks
    primary.config.mode = mode
    assert chat(gateway) == EXPECTED
    assert served(secondary) == 1
    assert metric(gateway, "p2_gateway_failovers_total{") >= 1


def test_refused_primary_is_invisible_stream_and_not(gateway: RunningGateway, mocks: Mocks) -> None:
    primary, secondary = mocks
    primary.stop()
    reply = sdk(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == EXPECTED
    assert reply.model == "chat"  # the group asked for, not the secondary's own "code"
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED
    assert {c.model for c in chunks} == {"chat"}
    assert served(secondary) == 2


def test_hung_primary_is_ejected_after_first_byte_timeout(
    gateway: RunningGateway, mocks: Mocks
) -> None:
    primary, secondary = mocks
    primary.config.mode = "hang"
    assert chat(gateway) == EXPECTED  # waits one first-byte timeout, then the secondary
    assert backend(gateway)["in_rotation"] is False
    for _ in range(5):  # later requests go straight to the secondary
        assert chat(gateway) == EXPECTED
    assert served(secondary) == 6
    # Moved on by the first-byte timeout or, sooner, by the failed health probe.
    assert metric(gateway, f'p2_gateway_failovers_total{{from="127.0.0.1:{primary.port}"') == 1


def test_hung_primary_without_prober_fails_over_on_first_byte_timeout(
    config: GatewayConfig, mocks: Mocks
) -> None:
    primary, secondary = mocks
    with running_gateway(config, probe_interval=60, first_byte_timeout=0.3) as gw:
        primary.config.mode = "hang"
        assert chat(gw) == EXPECTED
        label = (
            f'p2_gateway_failovers_total{{from="127.0.0.1:{primary.port}"'
            ',reason="first_byte_timeout"'
        )
        assert metric(gw, label) == 1
        assert chat(gw) == EXPECTED
    assert served(secondary) == 2


def test_slow_but_healthy_backend_is_waited_for(config: GatewayConfig, mocks: Mocks) -> None:
    primary, secondary = mocks
    primary.config.latency = 1.0  # longer than the first-byte timeout, /health answers
    with running_gateway(config, first_byte_timeout=0.3) as gw:
        assert chat(gw) == EXPECTED
    assert served(primary) == 1 and served(secondary) == 0


def test_recovered_primary_back_within_a_probe_interval(
    gateway: RunningGateway, mocks: Mocks
) -> None:
    primary, secondary = mocks
    primary.stop()
    assert chat(gateway) == EXPECTED
    assert served(secondary) == 1
    primary.restart()
    wait_for(lambda: backend(gateway)["in_rotation"] is True)
    assert chat(gateway) == EXPECTED
    assert served(primary) == 1


def test_loading_primary_stays_out_of_rotation(gateway: RunningGateway, mocks: Mocks) -> None:
    primary, secondary = mocks
    primary.config.mode = "loading"
    wait_for(lambda: backend(gateway)["state"] == "loading")
    for _ in range(3):
        assert chat(gateway) == EXPECTED
    assert served(primary) == 0 and served(secondary) == 3


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_midstream_death_continues_on_next_backend(
    gateway: RunningGateway, mocks: Mocks, path: str
) -> None:
    primary, _ = mocks
    primary.config.mode = "die_midstream"
    primary.config.die_after = 3
    body: dict[str, object] = (
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        if path == "/chat/completions"
        else {"model": "chat", "prompt": "once upon"}
    )
    events = stream_events(gateway, path, body)
    assert events[-1] == b"[DONE]" and events.count(b"[DONE]") == 1
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {"chat"}
    key = "delta" if path == "/chat/completions" else None
    text = "".join(
        (c["choices"][0]["delta"].get("content") or "") if key else c["choices"][0]["text"]
        for c in chunks
    )
    assert text == EXPECTED  # tok0-2 from the primary, tok3-7 from the secondary
    if key:
        assert sum("role" in c["choices"][0]["delta"] for c in chunks) == 1
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert metric(gateway, "p2_gateway_stream_continuations_total{") == 1


def test_error_event_mid_stream_is_continued_too(gateway: RunningGateway, mocks: Mocks) -> None:
    primary, _ = mocks
    primary.config.mode = "error_midstream"
    events = stream_events(
        gateway,
        "/chat/completions",
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert not [c for c in chunks if "error" in c]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == EXPECTED


def test_sdk_stream_survives_midstream_death(gateway: RunningGateway, mocks: Mocks) -> None:
    primary, _ = mocks
    primary.config.mode = "die_midstream"
    stream = sdk(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == EXPECTED


def test_no_backend_can_continue_ends_with_error_event(
    gateway: RunningGateway, mocks: Mocks
) -> None:
    primary, secondary = mocks
    primary.config.mode = "die_midstream"
    secondary.config.mode = "error503"
    stream = sdk(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "tok0 tok1 tok2 "


def test_every_backend_down_is_a_clean_openai_error(gateway: RunningGateway, mocks: Mocks) -> None:
    for mock in mocks:
        mock.stop()
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        chat(gateway)
    assert err.value.status_code == 503
    assert isinstance(err.value.body, dict) and "chat" in err.value.body["message"]
    with pytest.raises(openai.APIStatusError):
        sdk(gateway).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert time.monotonic() - started < 10  # no hang
    assert httpx.get(f"{gateway.url}/health/ready").status_code == 503


def test_every_backend_erroring_relays_the_last_error(
    gateway: RunningGateway, mocks: Mocks
) -> None:
    for mock in mocks:
        mock.config.mode = "error429"
    response = httpx.post(
        f"{gateway.base}/chat/completions",
        headers=AUTH,
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    error = assert_openai_error(response, 429)
    assert error["message"] == "mock error429"
    assert response.headers["retry-after"] == "1"


def test_all_backends_hung_is_504(mocks: Mocks) -> None:
    primary, secondary = mocks
    config = make_config({"chat": [(primary.url, "chat"), (secondary.url, "code")]}, timeout=20)
    for mock in mocks:
        mock.config.mode = "hang"
    with running_gateway(config, first_byte_timeout=0.3) as gw:
        response = httpx.post(
            f"{gw.base}/chat/completions",
            headers=AUTH,
            timeout=20,
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert_openai_error(response, 504, error_type="timeout_error", code="upstream_timeout")


def test_request_timeout_is_504(mocks: Mocks) -> None:
    primary, _ = mocks
    primary.config.latency = 3.0
    config = make_config({"chat": [(primary.url, "chat")]})
    with running_gateway(config, first_byte_timeout=0.2, request_timeout=0.8) as gw:
        response = httpx.post(
            f"{gw.base}/chat/completions",
            headers=AUTH,
            timeout=20,
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert_openai_error(response, 504, error_type="timeout_error")


def test_backend_4xx_is_relayed_without_failover(mocks: Mocks) -> None:
    primary, secondary = mocks
    # The config asks the primary for a model it does not serve: its 404 is relayed.
    config = make_config({"chat": [(primary.url, "wrong"), (secondary.url, "code")]})
    with running_gateway(config) as gw:
        response = httpx.post(
            f"{gw.base}/chat/completions",
            headers=AUTH,
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert_openai_error(response, 404, contains="not served")  # the backend's own error
    assert served(secondary) == 0


def test_unreachable_port_in_config(mocks: Mocks) -> None:
    _, secondary = mocks
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = make_config({"chat": [(dead, "chat"), (secondary.url, "code")]})
    with running_gateway(config) as gw:
        assert chat(gw) == EXPECTED
        wait_for(lambda: httpx.get(f"{gw.url}/health/ready").status_code == 200)


def test_client_disconnect_mid_stream_drops_the_backend_request(
    gateway: RunningGateway, mocks: Mocks
) -> None:
    primary, _ = mocks
    primary.config.chunk_delay = 0.2
    with httpx.stream(
        "POST",
        f"{gateway.base}/chat/completions",
        headers=AUTH,
        timeout=20,
        json={"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ) as response:
        next(response.iter_bytes())
    pools = [b.pool for b in gateway.app.state.registry.backends.values()]
    wait_for(lambda: not any(p._busy for p in pools), timeout=1.0)  # the stream takes 1.6 s
    assert chat(gateway) == EXPECTED
    assert metric(gateway, "p2_gateway_failovers_total{") == 0


def test_backend_erroring_repeatedly_cools_down(gateway: RunningGateway, mocks: Mocks) -> None:
    primary, secondary = mocks
    primary.config.mode = "error500"
    for _ in range(4):  # allowed_fails=3: the fourth error in a row starts the cooldown
        assert chat(gateway) == EXPECTED
    primary.config.mode = "ok"
    for _ in range(3):
        assert chat(gateway) == EXPECTED
    assert served(primary) == 4 and served(secondary) == 7
    assert backend(gateway)["state"] == "cooldown"
