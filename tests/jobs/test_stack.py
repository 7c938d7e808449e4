"""The job platform in ``p2 up``: Redis probed with PING, the job API after it, one worker
per GPU (or CPU), the gateway after the job API; and the real thing started and stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jobs.gpus import parse_nvidia_smi, worker_devices
from p2.core.process import free_port
from p2.core.settings import CoreSettings
from p2.stack.services import default_stack
from p2.stack.settings import StackSettings
from p2.supervisor.runner import redis_check
from p2.supervisor.spec import HealthCheck, ServiceSpec, StackError
from tests.docker.tools import http_server
from tests.jobs.helpers import RedisServer, http

SMI = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)
  MIG 3g.20gb     Device  0: (UUID: MIG-1111)
  MIG 3g.20gb     Device  1: (UUID: MIG-2222)
"""


def test_each_gpu_or_mig_instance_gets_a_worker() -> None:
    assert parse_nvidia_smi(SMI) == ["0", "MIG-1111", "MIG-2222"]
    assert parse_nvidia_smi("") == []
    assert worker_devices(" 0, 1 ") == ["0", "1"] and worker_devices("none") == []


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, ServiceSpec]:
    for name in ("REDIS_URL", "WORKER_GPUS", "WORKER_CPU_WORKERS", "WORKER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    core = CoreSettings.build(home=tmp_path)
    return {s.name: s for s in default_stack(core, StackSettings.from_environ({}))}


def test_redis_comes_first_then_the_job_api_then_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = _stack(tmp_path, monkeypatch, WORKER_GPUS="0,MIG-1111", WORKER_PORT="9100")
    assert specs["redis"].check is HealthCheck.REDIS
    assert "--appendonly" in specs["redis"].argv and str(tmp_path / "redis") in specs["redis"].argv
    assert specs["jobs"].depends_on == ("redis",)
    workers = [specs["worker-gpu0"], specs["worker-gpu1"]]
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0", "MIG-1111"]
    assert [w.port for w in workers] == [9100, 9101]
    assert all(w.depends_on == ("redis", "jobs") for w in workers)
    assert "jobs" in specs["gateway"].depends_on
    assert specs["gateway"].env["JOBS_URL"] == "http://127.0.0.1:8005"


def test_with_a_redis_url_no_redis_is_started_and_cpu_workers_see_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = _stack(
        tmp_path,
        monkeypatch,
        REDIS_URL="redis://queue.internal:6379/2",
        WORKER_GPUS="none",
        WORKER_CPU_WORKERS="2",
    )
    assert "redis" not in specs and specs["jobs"].depends_on == ()
    cpus = [specs["worker-cpu0"], specs["worker-cpu1"]]
    assert all(w.env["CUDA_VISIBLE_DEVICES"] == "" for w in cpus)
    assert all(w.env["REDIS_URL"] == "redis://queue.internal:6379/2" for w in cpus)


def test_a_missing_redis_server_is_a_clear_stack_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StackError, match="apt-get install redis-server, or set REDIS_URL"):
        _stack(tmp_path, monkeypatch, REDIS_SERVER="no-such-redis-server")


def test_the_redis_check_wants_pong(redis_server: RedisServer) -> None:
    def check(port: int) -> str | None:
        spec = ServiceSpec("redis", ("x",), port, check=HealthCheck.REDIS)
        return asyncio.run(redis_check(spec, httpx.AsyncClient(), 2.0))

    assert check(redis_server.port) is None
    with http_server({"/": 200}) as port:
        assert (check(port) or "").startswith("PING answered")
    assert (check(free_port()) or "").startswith("PING failed")


def test_p2_up_runs_redis_the_job_api_and_a_worker(tmp_path: Path) -> None:
    """``p2 up --detach --only worker-cpu0,...`` in a fresh P2_HOME on free ports, then
    ``p2 down``. (inference-chat comes along because ``p2 up`` names its endpoint.)"""
    ports = {
        "REDIS_PORT": free_port(),
        "JOBS_PORT": free_port(),
        "WORKER_PORT": free_port(),
        "CHAT_PORT": free_port(),
    }
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "P2_HOME": str(tmp_path / "home"),
        "P2_SUPERVISOR_METRICS_PORT": "0",
        "WORKER_GPUS": "none",
        "JOBS_TEST_MODELS": "1",
    }
    env.pop("REDIS_URL", None)
    p2 = [sys.executable, "-m", "p2"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*p2, *args], env=env, capture_output=True, text=True, timeout=300)

    up = run("up", "--detach", "--only", "worker-cpu0,inference-chat")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"✔ redis healthy on :{ports['REDIS_PORT']}" in up.stdout
        status = run("status")
        assert status.returncode == 0, status.stdout
        listed = {line.split()[0] for line in status.stdout.splitlines()[1:-1]}
        assert {"redis", "jobs", "worker-cpu0"} <= listed
        client = http(f"http://127.0.0.1:{ports['JOBS_PORT']}")
        job = client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()
        done = client.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
        assert done["status"] == "succeeded"
        assert (tmp_path / "home" / "redis" / "appendonlydir").is_dir()  # persistence on
    finally:
        down = run("down")
    assert down.returncode == 0 and "P2 stopped." in down.stdout
