"""The failure table in action: whose fault an error is decides retries and cooldowns.

Three scripted backends; ``allowed_fails=0``, so any failure charged to a
backend puts it in cooldown at once and shows in ``/health/ready``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.failures import POLICY, Cooldown, Kind, Then
from testkit.openai_errors import assert_openai_error
from tests.gateway.conftest import ADMIN, AUTH, RunningGateway, make_config, running_gateway
from tests.gateway.upstreams import ScriptedBackend, error, serve

PATH = "/v1/chat/completions"


@pytest.fixture
def backends() -> Iterator[list[ScriptedBackend]]:
    scripted = [ScriptedBackend(model=name) for name in ("a", "b", "c")]
    servers = [serve(backend) for backend in scripted]
    try:
        yield scripted
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def gateway(backends: list[ScriptedBackend]) -> Iterator[RunningGateway]:
    config = make_config(
        {"chat": [(b.url, b.model) for b in backends]},
        num_retries=1,
        allowed_fails=0,
        cooldown_time=60,
    )
    with running_gateway(config) as running:
        yield running


def ask(gateway: RunningGateway, text: str) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{gateway.base}/chat/completions", json=body, headers=AUTH, timeout=20)


def states(gateway: RunningGateway) -> list[object]:
    ready = httpx.get(f"{gateway.url}/health/ready", headers=ADMIN).json()
    return [b["state"] for b in ready["backends"]["chat"]]


def test_a_500_the_request_reproduces_goes_back_and_charges_no_backend(
    gateway: RunningGateway, backends: list[ScriptedBackend]
) -> None:
    a, b, c = backends
    for backend in (a, b):
        backend.scripted["ids 999999"] = error(500, "token id out of range")
    response = ask(gateway, "ids 999999")
    assert_openai_error(response, 500, contains="token id out of range")
    assert (a.calls[PATH], b.calls[PATH], c.calls[PATH]) == (1, 1, 0)  # not tried on the rest
    assert states(gateway) == ["up", "up", "up"]  # nobody cooling down
    assert ask(gateway, "hello").status_code == 200
    assert a.calls[PATH] == 2  # the primary still serves


def test_a_500_another_backend_answers_charges_the_first(
    gateway: RunningGateway, backends: list[ScriptedBackend]
) -> None:
    a, b, _ = backends
    a.scripted["flaky"] = error(500, "backend crashed")
    assert ask(gateway, "flaky").status_code == 200  # answered by b
    assert states(gateway) == ["cooldown", "up", "up"]
    assert ask(gateway, "hello").status_code == 200
    assert (a.calls[PATH], b.calls[PATH]) == (1, 2)


@pytest.mark.parametrize(
    "answer",
    [
        error(400, "This model's maximum context length is 8192 tokens", "context_length_exceeded"),
        error(500, "the request exceeds the available context size", "exceed_context_size"),
        error(422, "'temperature' must be a number"),
        error(404, "no such model"),
    ],
)
def test_the_clients_own_mistake_goes_back_at_once(
    gateway: RunningGateway,
    backends: list[ScriptedBackend],
    answer: tuple[int, dict[str, object]],
) -> None:
    a, b, c = backends
    a.scripted["x" * 50] = answer
    response = ask(gateway, "x" * 50)
    assert response.status_code == answer[0]
    assert response.json() == answer[1]
    assert (a.calls[PATH], b.calls[PATH], c.calls[PATH]) == (1, 0, 0)
    assert states(gateway) == ["up", "up", "up"]


def test_every_backend_refusing_is_a_503_naming_only_the_group(
    backends: list[ScriptedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    from p2.core.process import free_port

    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    with running_gateway(make_config({"chat": [(url, "m") for url in dead]})) as gw:
        response = ask(gw, "hello")
    error_body = assert_openai_error(response, 503, code="no_backend_available")
    assert error_body["message"] == "No backend of model 'chat' is available."
    assert dead[0].removesuffix("/v1").removeprefix("http://") in caplog.text  # the log has it


def test_every_failure_kind_has_a_rule() -> None:
    assert set(POLICY) == set(Kind)
    for kind in (Kind.HTTP_4XX, Kind.CONTEXT_LENGTH):
        rule = POLICY[kind]
        assert (rule.then, rule.cooldown, rule.eject) == (Then.CLIENT, Cooldown.NO, False)
