"""The stack: runners started in dependency order, stopped in reverse."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from p2.supervisor.runner import ServiceRunner
from p2.supervisor.spec import ServiceSpec, start_order
from p2.supervisor.state import Health, Phase, ServiceState, StackState, write_state


class _StackCollector(Collector):
    """Restarts (a counter) and health (a gauge) of every service, read from the state."""

    def __init__(self, state: StackState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "p2_supervisor_restarts", "Restarts of each service since p2 up.", labels=["service"]
        )
        up = GaugeMetricFamily(
            "p2_supervisor_service_up",
            "1 when the service's last health check passed.",
            labels=["service"],
        )
        for name, service in self.state.services.items():
            restarts.add_metric([name], float(service.restarts))
            up.add_metric([name], 1.0 if service.health is Health.HEALTHY else 0.0)
        yield restarts
        yield up


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
        self.registry.register(_StackCollector(self.state))
        self.runners: dict[str, ServiceRunner] = {}
        for spec in self.specs:
            state = ServiceState(name=spec.name, port=spec.port)
            self.state.services[spec.name] = state
            self.runners[spec.name] = ServiceRunner(
                spec, state, logs_dir=home / "logs", changed=self._changed, say=say
            )
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
