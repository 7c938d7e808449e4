"""What the supervisor runs: one ``ServiceSpec`` per service, with its health probe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Probe:
    """Compose-style healthcheck: ``interval``, ``timeout``, ``start_period``, ``retries``.

    The defaults are the operators' guide's tuned values for model servers.
    """

    interval: float = 60.0
    timeout: float = 30.0
    start_period: float = 60.0
    retries: int = 3

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str]) -> Probe:
        """``P2_HEALTH_<FIELD>`` for all services, ``P2_<SERVICE>_HEALTH_<FIELD>`` for one."""
        key = service.upper().replace("-", "_")
        values: dict[str, float] = {}
        for name in ("interval", "timeout", "start_period", "retries"):
            raw = env.get(f"P2_{key}_HEALTH_{name.upper()}") or env.get(f"P2_HEALTH_{name.upper()}")
            if raw:
                values[name] = float(raw)
        base = cls()
        return cls(
            interval=values.get("interval", base.interval),
            timeout=values.get("timeout", base.timeout),
            start_period=values.get("start_period", base.start_period),
            retries=int(values.get("retries", base.retries)),
        )


class HealthCheck(StrEnum):
    """How a service's health is probed (``runner.CHECKS`` holds one function per kind)."""

    HTTP = "http"  # GET health_url answers 200
    REDIS = "redis"  # a PING on the port answers +PONG


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    port: int
    host: str = "127.0.0.1"
    depends_on: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    probe: Probe = field(default_factory=Probe)
    health_path: str = "/health"
    start_timeout: float = 600.0
    check: HealthCheck = HealthCheck.HTTP

    @property
    def health_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}{self.health_path}"


class StackError(ValueError):
    """The stack definition is inconsistent (unknown or circular dependency)."""


def start_order(specs: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """Dependencies first; fails on unknown or circular dependencies."""
    by_name = {s.name: s for s in specs}
    ordered: list[ServiceSpec] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(spec: ServiceSpec) -> None:
        if spec.name in done:
            return
        if spec.name in visiting:
            raise StackError(f"circular dependency through {spec.name}")
        visiting.add(spec.name)
        for dep in spec.depends_on:
            if dep not in by_name:
                raise StackError(f"{spec.name} depends on unknown service {dep}")
            visit(by_name[dep])
        visiting.discard(spec.name)
        done.add(spec.name)
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return ordered


def with_dependencies(specs: Sequence[ServiceSpec], wanted: Sequence[str]) -> list[ServiceSpec]:
    """The named services and everything they depend on, in start order."""
    by_name = {s.name: s for s in specs}
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise StackError(f"unknown service {', '.join(unknown)}; known: {', '.join(by_name)}")
    keep: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].depends_on)
    return [s for s in start_order(specs) if s.name in keep]
