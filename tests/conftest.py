"""Shared fixtures: a tiny real GGUF, and real inference servers in child processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from p2.core.process import ProcessError, free_port, running, started
from testkit.tiny_gguf import write_tiny_gguf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def p2_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("p2home")


@dataclass
class RunningServer:
    url: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    stack: contextlib.ExitStack

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def start_inference(
    home: Path,
    *,
    model: Path | None,
    engine: str = "llama-cpp",
    role: str = "chat",
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> RunningServer:
    """A real inference server (``python -m inference``) via the product's own process helpers;
    healthy unless ``wait`` is False."""
    port = free_port()
    argv = [sys.executable, "-m", "inference", "--role", role, "--port", str(port)]
    argv += ["--engine", engine]
    if model is not None:
        argv += ["--model", str(model)]
    log = home / "logs" / f"test-{role}-{port}.log"
    url = f"http://127.0.0.1:{port}"
    stack = contextlib.ExitStack()
    child_env = {"P2_HOME": str(home), **(env or {})}
    try:
        if wait:
            proc = stack.enter_context(
                running(argv, health_url=f"{url}/health", timeout=300, env=child_env, log_path=log)
            )
        else:
            proc = stack.enter_context(started(argv, env=child_env, log_path=log))
    except ProcessError:
        print(log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)")
        raise
    return RunningServer(url, port, log, proc, stack)


def stop(server: RunningServer) -> None:
    server.stack.close()


@pytest.fixture
def server_factory(p2_home: Path) -> Iterator[object]:
    started: list[RunningServer] = []

    def make(**kwargs: object) -> RunningServer:
        server = start_inference(p2_home, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        stop(server)
