from __future__ import annotations

import pytest

from p2.supervisor.spec import Probe, ServiceSpec, StackError, start_order, with_dependencies


def _spec(name: str, *deps: str) -> ServiceSpec:
    return ServiceSpec(name, ("true",), 1, depends_on=deps)


def test_dependencies_start_first() -> None:
    specs = [
        _spec("rag", "gateway"),
        _spec("gateway", "chat", "code"),
        _spec("chat"),
        _spec("code"),
    ]
    order = [s.name for s in start_order(specs)]
    assert order.index("gateway") > order.index("chat")
    assert order.index("gateway") > order.index("code")
    assert order[-1] == "rag"


def test_circular_and_unknown_dependencies_are_refused() -> None:
    with pytest.raises(StackError, match="circular"):
        start_order([_spec("a", "b"), _spec("b", "a")])
    with pytest.raises(StackError, match="unknown service nope"):
        start_order([_spec("a", "nope")])


def test_only_brings_its_dependencies_along() -> None:
    specs = [_spec("rag", "gateway"), _spec("gateway", "chat"), _spec("chat"), _spec("code")]
    assert [s.name for s in with_dependencies(specs, ["gateway"])] == ["chat", "gateway"]
    with pytest.raises(StackError, match="unknown service typo"):
        with_dependencies(specs, ["typo"])


def test_probe_defaults_and_per_service_override() -> None:
    assert Probe() == Probe(interval=60, timeout=30, start_period=60, retries=3)
    env = {"P2_HEALTH_INTERVAL": "5", "P2_INFERENCE_CHAT_HEALTH_INTERVAL": "2"}
    assert Probe.from_env("inference-chat", env).interval == 2
    assert Probe.from_env("gateway", env).interval == 5
    assert Probe.from_env("gateway", env).retries == 3
