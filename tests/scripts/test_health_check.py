"""scripts/health_check.sh against real servers: all ✅, then ❌ for a stopped one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RunningServer, stop

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "health_check.sh"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_reports_each_service_and_fails_when_one_is_down(
    server_factory: Callable[..., RunningServer], tiny_gguf: Path
) -> None:
    chat = server_factory(model=tiny_gguf)
    code = server_factory(model=tiny_gguf, role="code")
    env = {
        "CHAT_PORT": str(chat.port),
        "CODE_PORT": str(code.port),
        "SKIP": "gateway rag embedding",
        "HEALTH_TIMEOUT": "2",
    }
    healthy = run(env)
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.count("✅") == 2 and "❌" not in healthy.stdout

    stop(code)
    broken = run(env)
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert any(line.startswith("✅ inference-chat") for line in lines)
    assert any(line.startswith("❌ inference-code") for line in lines)
