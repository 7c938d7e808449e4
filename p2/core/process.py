"""Child processes: spawn in their own group, wait for health, stop cleanly.

Used by the inference service (a native ``llama-server`` child), by the
benchmarks and tests, and by the ``p2 up`` supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


class ProcessError(RuntimeError):
    """A child process could not be started or did not become healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform == "linux":  # resolved here, so the forked child only calls into C
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl

# The kernel sends the parent-death signal when the *thread* that forked the child
# exits, so children are forked from the main thread or from this one, which lives as
# long as the process: a child spawned by a short-lived loader thread would otherwise
# be killed the moment that thread finishes.
_spawner = ThreadPoolExecutor(1, thread_name_prefix="p2-spawner")


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies.

    Called in a child (``preexec_fn``, or first thing in a worker process): if the
    parent is already gone (``parent`` given and no longer ours), exit at once.
    """
    expected = os.getppid() if parent is None else parent
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != expected:  # the parent died before the signal was armed
        os._exit(1)


def _die_with(parent: int) -> Callable[[], None]:
    return lambda: die_with_parent(signal.SIGTERM, parent)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session so the whole group can be signalled.

    With ``die_with_parent`` (Linux) the child gets SIGTERM when this process dies,
    however it dies (kill -9 and the OOM killer included): no model server is left
    holding memory after its owner is gone.
    """
    full_env = {**os.environ, **(env or {})}
    out: int | object = subprocess.DEVNULL
    handle = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = log_path.open("ab")
        out = handle

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            env=full_env,
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()) if die_with_parent else None,
        )

    try:
        if not die_with_parent or threading.current_thread() is threading.main_thread():
            return popen()
        return _spawner.submit(popen).result()
    finally:
        if handle is not None:
            handle.close()


def terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int:
    """SIGTERM the child's group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return int(proc.returncode)


def wait_healthy(
    url: str,
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits. ``verify``: how an
    ``https`` URL's certificate is checked (a context with a private CA, say)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0, verify=verify) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ProcessError(
                    f"process exited with code {proc.returncode} before {url} was healthy"
                )
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(interval)
    raise ProcessError(f"{url} not healthy after {timeout:.0f}s (last: {last})")


@contextlib.contextmanager
def started(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child running inside the block and stopped (group and all) after it."""
    proc = spawn(argv, env=env, log_path=log_path)
    try:
        yield proc
    finally:
        terminate(proc)


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    *,
    health_url: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child that is healthy inside the block and stopped (group and all) after it."""
    with started(argv, env=env, log_path=log_path) as proc:
        wait_healthy(health_url, timeout=timeout, proc=proc)
        yield proc
