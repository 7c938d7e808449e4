"""``p2 up --detach``, ``p2 status``, ``p2 down`` and ``p2 logs`` as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2.core.process import free_port
from p2.supervisor.state import ServiceState, StackState, write_state

ONLY = "inference-chat,inference-code"


def p2(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def stack_env(tiny_gguf: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "P2_HOME": str(tmp_path / "home"),
        "CHAT_PORT": str(free_port()),
        "CODE_PORT": str(free_port()),
        "CHAT_MODEL_PATH": str(tiny_gguf),
        "CODE_MODEL_PATH": str(tiny_gguf),
        "P2_SUPERVISOR_METRICS_PORT": str(free_port()),
        "P2_HEALTH_INTERVAL": "0.5",
        "P2_HEALTH_TIMEOUT": "1",
    }
    yield env
    p2(env, "down")


def test_up_status_restart_and_down(stack_env: dict[str, str]) -> None:
    started = p2(stack_env, "up", "--detach", "--only", ONLY)
    assert started.returncode == 0, started.stderr + started.stdout
    assert "inference-chat healthy" in started.stdout
    assert f"http://127.0.0.1:{stack_env['CHAT_PORT']}/v1" in started.stdout

    table = p2(stack_env, "status")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["SERVICE", "PID", "PORT", "HEALTH", "RESTARTS", "UPTIME"]
    chat = next(r.split() for r in rows if r.startswith("inference-chat"))
    assert chat[2] == stack_env["CHAT_PORT"] and chat[3] == "healthy" and chat[4] == "0"

    again = p2(stack_env, "up", "--detach", "--only", ONLY)
    assert again.returncode == 1
    assert "already running" in again.stderr

    os.kill(int(chat[1]), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = next(
            r.split()
            for r in p2(stack_env, "status").stdout.splitlines()
            if r.startswith("inference-chat")
        )
        if row[4] == "1" and row[3] == "healthy":
            break
        time.sleep(0.3)
    assert row[4] == "1" and row[3] == "healthy" and row[1] != chat[1]
    metrics = httpx.get(f"http://127.0.0.1:{stack_env['P2_SUPERVISOR_METRICS_PORT']}/metrics").text
    assert 'p2_supervisor_restarts_total{service="inference-chat"} 1.0' in metrics

    logs = p2(stack_env, "logs", "inference-chat")
    assert "ready in" in logs.stdout

    stopped = p2(stack_env, "down")
    assert stopped.stdout.strip() == "P2 stopped."
    pids = [int(r.split()[1]) for r in rows if r.startswith("inference-")] + [int(row[1])]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert p2(stack_env, "status").returncode == 1


def test_a_taken_port_is_named(stack_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(stack_env["CODE_PORT"])))
        busy.listen()
        result = p2(stack_env, "up", "--detach", "--only", ONLY)
    assert result.returncode == 1
    assert f"port {stack_env['CODE_PORT']} (inference-code) already in use" in result.stderr


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ", 1)[1][0] != "Z"


def test_kill_9_of_the_supervisor_takes_its_services_along(stack_env: dict[str, str]) -> None:
    started = p2(stack_env, "up", "--detach", "--only", ONLY)
    assert started.returncode == 0, started.stderr + started.stdout
    state = json.loads((Path(stack_env["P2_HOME"]) / "run" / "state.json").read_text())
    services = [s["pid"] for s in state["services"].values()]
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in services) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in services), "services outlived their supervisor"
    again = p2(stack_env, "up", "--detach", "--only", ONLY)  # ports and lock are free again
    assert again.returncode == 0, again.stderr + again.stdout


STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


def test_down_stops_what_a_dead_supervisor_left_running(stack_env: dict[str, str]) -> None:
    """A service that ignores SIGTERM survives its supervisor; down (or the next up) ends it."""
    home = Path(stack_env["P2_HOME"])
    stubborn = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, "serve", "inference"], start_new_session=True
    )
    state = StackState(supervisor_pid=2**22 + 1, started_at=time.time())  # long gone
    state.services["inference-chat"] = ServiceState("inference-chat", 1, pid=stubborn.pid)
    write_state(home, state)
    result = p2(stack_env, "down")
    assert "stopped what it left running: inference-chat" in result.stdout
    assert stubborn.wait(15) == -signal.SIGKILL
