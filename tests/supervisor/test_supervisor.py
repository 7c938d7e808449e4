"""The supervisor on real llama.cpp servers (tiny GGUF): start order, crash and hang recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from p2.core.process import free_port
from p2.supervisor import runner
from p2.supervisor.spec import Probe, ServiceSpec
from p2.supervisor.state import Health
from p2.supervisor.supervisor import Supervisor

FAST = Probe(interval=0.3, timeout=0.5, start_period=30, retries=2)


def _server(name: str, model: Path, home: Path, *deps: str) -> ServiceSpec:
    port = free_port()
    argv = (sys.executable, "-m", "inference", "--model", str(model), "--port", str(port))
    return ServiceSpec(name, argv, port, depends_on=deps, probe=FAST, env={"P2_HOME": str(home)})


async def _until(check: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def test_start_order_crash_and_hang_recovery(tiny_gguf: Path, tmp_path: Path) -> None:
    specs = [
        _server("front", tiny_gguf, tmp_path, "left", "right"),
        _server("left", tiny_gguf, tmp_path),
        _server("right", tiny_gguf, tmp_path),
    ]
    supervisor = Supervisor(specs, tmp_path, say=lambda _: None)
    services = supervisor.state.services
    await supervisor.start()
    try:
        await asyncio.wait_for(supervisor.wait_healthy(), 120)
        front = services["front"]
        assert front.started_at is not None
        assert all(
            front.started_at >= (services[d].healthy_at or 1e18) for d in ("left", "right")
        ), "front started before its dependencies were healthy"

        # kill -9: the supervisor notices the exit and starts it again.
        crashed_pid = services["left"].pid
        assert crashed_pid is not None
        os.kill(crashed_pid, signal.SIGKILL)
        await _until(
            lambda: services["left"].restarts == 1 and services["left"].health is Health.HEALTHY
        )
        assert services["left"].pid != crashed_pid

        # A hung process (stopped, port still open): probes time out, it is replaced.
        hung_pid = services["right"].pid
        assert hung_pid is not None
        os.kill(hung_pid, signal.SIGSTOP)
        await _until(
            lambda: services["right"].restarts == 1 and services["right"].health is Health.HEALTHY
        )
        assert "timed out" in services["right"].last_error
        async with httpx.AsyncClient() as client:
            health = await client.get(specs[2].health_url)
        assert health.status_code == 200
    finally:
        await supervisor.stop()
    for state in services.values():
        assert state.health is Health.STOPPED
        assert state.pid is not None
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"{state.name} (pid {state.pid}) still running after stop")


FLAPPING = """
import http.server, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(0.3)  # healthy for a moment, then it crashes
"""


async def test_a_flapping_service_backs_off_instead_of_looping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MIN_BACKOFF", 0.1)
    port = free_port()
    fast = Probe(interval=0.05, timeout=0.5, start_period=5, retries=1)
    spec = ServiceSpec("flappy", (sys.executable, "-c", FLAPPING, str(port)), port, probe=fast)
    said: list[str] = []
    supervisor = Supervisor([spec], tmp_path, say=said.append)
    await supervisor.start()
    try:
        await _until(lambda: supervisor.state.services["flappy"].restarts >= 4, timeout=30)
    finally:
        await supervisor.stop()
    delays = [float(line.split("restarting in ")[1].split("s ")[0]) for line in said if "↻" in line]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]  # each crash waits twice as long, up to a cap
