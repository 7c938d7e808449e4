"""A whole P2 stack for a benchmark or an end-to-end test: ``p2 up --detach`` in a
private P2_HOME on free ports.

The inference servers run a tiny random-weight GGUF (real llama.cpp, fast); embedding,
RAG, the gateway, Redis, the job API and a CPU worker are the real services. Keys are
on, so every port is checked as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from p2.core.process import free_port
from testkit.tiny_gguf import write_tiny_gguf

USER_KEY = "sk-bench-user"
ADMIN_KEY = "sk-bench-admin"
PORTS = ("GATEWAY", "CHAT", "CODE", "RAG", "EMBEDDING", "JOBS", "REDIS", "WORKER")


@dataclass(frozen=True)
class Stack:
    home: Path
    env: dict[str, str]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[f'{service.upper()}_PORT']}"

    def state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads((self.home / "run" / "state.json").read_text())
        return state

    def p2(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "p2", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@contextlib.contextmanager
def running_stack(home: Path, **extra: str) -> Iterator[Stack]:
    """The stack, healthy inside the block and stopped after it."""
    # Its byte-level tokens make RAG prompts thousands of tokens long: a training context
    # above CTX_SIZE (4096) gives both engines (llama-server caps slots at it) the same room.
    model = write_tiny_gguf(home / "tiny.gguf", context_length=8192)
    env = {
        **os.environ,
        "P2_HOME": str(home),
        "CHAT_MODEL_PATH": str(model),
        "CODE_MODEL_PATH": str(model),
        "P2_API_KEYS": USER_KEY,
        "P2_ADMIN_KEYS": ADMIN_KEY,
        "P2_SUPERVISOR_METRICS_PORT": str(free_port()),
        "P2_LOG_LEVEL": "warning",
        **{f"{name}_PORT": str(free_port()) for name in PORTS},
        **extra,
    }
    stack = Stack(home, env)
    started = stack.p2("up", "--detach")
    if started.returncode != 0:
        stack.p2("down")
        raise RuntimeError(f"p2 up failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield stack
    finally:
        stack.p2("down")
