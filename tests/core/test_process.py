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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_child_dies_with_its_parent_even_after_kill_9(tmp_path: Path) -> None:
    """The llama-server-under-inference case: spawned by a loader thread that has ended."""
    pid_file = tmp_path / "grandchild.pid"
    parent_code = (
        "import sys, threading, time\n"
        "from p2.core.process import spawn\n"
        "def load():\n"
        "    child = spawn([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "t = threading.Thread(target=load); t.start(); t.join()\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the parent never spawned its child"
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        time.sleep(0.5)
        assert _alive(grandchild), "the child must outlive the thread that spawned it"
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(grandchild), "orphan left running after its parent was killed"
    finally:
        parent.kill()


def test_wait_healthy_checks_https_against_the_ca_it_is_given(tmp_path: Path) -> None:
    """A server with a private CA is healthy to a caller holding that CA, and only to it."""
    from testkit.mock_openai import MockConfig, ThreadedMock
    from testkit.mock_providers import tls_files

    files = tls_files(tmp_path)
    mock = ThreadedMock(MockConfig(), tls=files.server_context()).start()
    try:
        wait_healthy(f"{mock.root}/health", timeout=5, verify=files.client_context())
        with pytest.raises(ProcessError, match="ConnectError"):
            wait_healthy(f"{mock.root}/health", timeout=0.5)
    finally:
        mock.stop()
