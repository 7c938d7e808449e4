"""The supervisor's state on disk, for ``p2 status``, ``p2 down`` and ``p2 up --detach``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from p2.core.files import atomic_write


class Health(StrEnum):
    """Where a supervised service is in its life; shown by ``p2 status``."""

    WAITING = "waiting"  # for its dependencies to be healthy
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # failing probes, not yet restarted
    RESTARTING = "restarting"
    STOPPED = "stopped"


class Phase(StrEnum):
    """The stack as a whole."""

    STARTING = "starting"
    UP = "up"  # every service was healthy at least once
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class ServiceState:
    name: str
    port: int
    pid: int | None = None
    health: Health = Health.WAITING
    restarts: int = 0
    started_at: float | None = None
    healthy_at: float | None = None
    last_error: str = ""


@dataclass
class StackState:
    supervisor_pid: int
    started_at: float
    services: dict[str, ServiceState] = field(default_factory=dict)
    phase: Phase = Phase.STARTING

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        raw: dict[str, Any] = json.loads(text)
        services = {}
        for name, value in raw.pop("services", {}).items():
            value["health"] = Health(value.get("health", Health.WAITING))
            services[name] = ServiceState(**value)
        raw["phase"] = Phase(raw.get("phase", Phase.STARTING))
        return cls(services=services, **raw)


def run_dir(home: Path) -> Path:
    path = home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_path(home: Path) -> Path:
    return run_dir(home) / "state.json"


def write_state(home: Path, state: StackState) -> None:
    atomic_write(state_path(home), state.to_json(), fsync=False)


def read_state(home: Path) -> StackState | None:
    try:
        return StackState.from_json(state_path(home).read_text())
    except (FileNotFoundError, json.JSONDecodeError, TypeError, ValueError):
        return None
