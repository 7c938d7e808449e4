"""The supervisor's state on disk, for ``p2 status``, ``p2 down`` and ``p2 up --detach``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ServiceState:
    name: str
    port: int
    pid: int | None = None
    health: str = "waiting"  # waiting, starting, healthy, unhealthy, restarting, failed, stopped
    restarts: int = 0
    started_at: float | None = None
    healthy_at: float | None = None
    last_error: str = ""


@dataclass
class StackState:
    supervisor_pid: int
    started_at: float
    services: dict[str, ServiceState] = field(default_factory=dict)
    phase: str = "starting"  # starting, up, stopping, stopped, failed

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        raw: dict[str, Any] = json.loads(text)
        services = {k: ServiceState(**v) for k, v in raw.pop("services", {}).items()}
        return cls(services=services, **raw)


def run_dir(home: Path) -> Path:
    path = home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_path(home: Path) -> Path:
    return run_dir(home) / "state.json"


def write_state(home: Path, state: StackState) -> None:
    target = state_path(home)
    partial = target.with_suffix(".tmp")
    partial.write_text(state.to_json())
    os.replace(partial, target)


def read_state(home: Path) -> StackState | None:
    try:
        return StackState.from_json(state_path(home).read_text())
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
