"""The stack: runners started in dependency order, stopped in reverse."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from p2.supervisor.runner import ServiceRunner
from p2.supervisor.spec import ServiceSpec, start_order
from p2.supervisor.state import Health, Phase, ServiceState, StackState, write_state


def _restarts_of(state: ServiceState) -> Callable[[], float]:
    return lambda: float(state.restarts)


def _up_of(state: ServiceState) -> Callable[[], float]:
    return lambda: 1.0 if state.health is Health.HEALTHY else 0.0


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        home: Path,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        self.home = home
        self.specs = start_order(specs)
        self.state = StackState(supervisor_pid=os.getpid(), started_at=time.time())
        self.registry = CollectorRegistry()
        self._restarts = Gauge(
            "p2_supervisor_restarts",
            "Restarts of each service since p2 up.",
            ["service"],
            registry=self.registry,
        )
        self._up = Gauge(
            "p2_supervisor_service_up",
            "1 when the service's last health check passed.",
            ["service"],
            registry=self.registry,
        )
        self.runners: dict[str, ServiceRunner] = {}
        for spec in self.specs:
            state = ServiceState(name=spec.name, port=spec.port)
            self.state.services[spec.name] = state
            self.runners[spec.name] = ServiceRunner(
                spec, state, logs_dir=home / "logs", changed=self._changed, say=say
            )
            self._restarts.labels(spec.name).set_function(_restarts_of(state))
            self._up.labels(spec.name).set_function(_up_of(state))
        self._tasks: list[asyncio.Task[None]] = []

    def _changed(self) -> None:
        write_state(self.home, self.state)

    async def start(self) -> None:
        for spec in self.specs:
            deps = [self.runners[d] for d in spec.depends_on]
            task = asyncio.create_task(self.runners[spec.name].run(deps), name=spec.name)
            self._tasks.append(task)
        self._changed()

    async def wait_healthy(self) -> None:
        await asyncio.gather(*(r.healthy.wait() for r in self.runners.values()))
        self.state.phase = Phase.UP
        self._changed()

    async def stop(self) -> None:
        """Dependents first, so nothing sees its dependency vanish while serving."""
        self.state.phase = Phase.STOPPING
        self._changed()
        for spec in reversed(self.specs):
            await self.runners[spec.name].stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.state.phase = Phase.STOPPED
        self._changed()
