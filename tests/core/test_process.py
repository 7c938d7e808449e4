from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from p2.core.process import ProcessError, free_port, running, spawn, terminate, wait_healthy


def test_terminate_kills_the_whole_group_even_if_sigterm_is_ignored() -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn([sys.executable, "-c", code])
    time.sleep(0.5)
    terminate(proc, grace=0.5)
    assert proc.poll() is not None
    time.sleep(0.2)
    out = subprocess.run(
        ["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True, text=True, check=False
    )
    alive = [state for state in out.stdout.split() if not state.startswith("Z")]
    assert alive == []  # no orphan left running in the group


def test_wait_healthy_fails_fast_when_the_process_dies() -> None:
    proc = spawn([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ProcessError, match="exited with code 3"):
        wait_healthy("http://127.0.0.1:9/health", timeout=30, proc=proc)


def test_running_yields_a_healthy_child_and_stops_it_even_on_error(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with (
        pytest.raises(RuntimeError, match="boom"),
        running(
            argv,
            health_url=f"http://127.0.0.1:{port}/",
            timeout=30,
            env={},
            log_path=tmp_path / "log",
        ) as proc,
    ):
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        raise RuntimeError("boom")
    assert proc.poll() is not None
