"""A real Prometheus (Debian's) with the project's scrape configs sees every P2 target up.

The P2 services run for real, as ``tests/conftest.py`` starts them: inference-chat and
inference-code on llama.cpp with a tiny GGUF, embedding with its default model and backend,
the gateway with a config pointing at the two inference servers, and rag with its embedded
Qdrant. ``config/prometheus.yml`` is used as shipped except for the ports (each service runs
on a free port here) and a one-second scrape interval. The supervisor's target is checked
with ``p2 up`` itself. Everything listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from embedding.settings import DEFAULT_PORT as EMBEDDING_DEFAULT_PORT
from gateway.settings import GatewaySettings
from inference.settings import DEFAULT_PORTS as INFERENCE_DEFAULT_PORTS
from inference.settings import Role
from jobs.settings import DEFAULT_PORT as JOBS_DEFAULT_PORT
from p2.core.process import free_port, spawn, terminate, wait_healthy
from rag.settings import RagSettings
from tests.conftest import RunningServer, start_inference, stop
from tests.docker.tools import ROOT, require_tool

LOCAL_CONFIG = ROOT / "config" / "prometheus.yml"
COMPOSE_CONFIG = ROOT / "docker" / "prometheus.yml"
SUPERVISOR_METRICS_PORT = 8009  # P2_SUPERVISOR_METRICS_PORT's default (docs/operations.md)

# Each job of config/prometheus.yml and the port its service listens on by default.
DEFAULT_PORTS = {
    "gateway": int(GatewaySettings.model_fields["port"].default),
    "inference-chat": INFERENCE_DEFAULT_PORTS[Role.CHAT],
    "rag": int(RagSettings.model_fields["port"].default),
    "embedding": EMBEDDING_DEFAULT_PORT,
    "inference-code": INFERENCE_DEFAULT_PORTS[Role.CODE],
    "jobs": JOBS_DEFAULT_PORT,
    "p2-supervisor": SUPERVISOR_METRICS_PORT,
}
SERVICE_JOBS = ("gateway", "inference-chat", "rag", "embedding", "inference-code")
# Where each service listens inside the compose network (docker/compose.p2.yml).
COMPOSE_TARGETS = {
    "gateway": "gateway:8000",
    "inference-chat": "inference-chat:8001",
    "rag": "rag:8002",
    "embedding": "embedding:8003",
    "inference-code": "inference-code:8004",
    "qdrant": "qdrant:6333",
    "jobs": "jobs:8005",
    "flower": "flower:5555",
}


def jobs(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def for_test(ports: dict[str, int]) -> dict[str, Any]:
    """config/prometheus.yml with the test's ports, a 1 s interval, and only ``ports``' jobs."""
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    kept = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in ports:
            continue
        for static in job["static_configs"]:
            assert static["targets"] == [f"127.0.0.1:{DEFAULT_PORTS[name]}"], name
            static["targets"] = [f"127.0.0.1:{ports[name]}"]
        kept.append(job)
    config["scrape_configs"] = kept
    assert isinstance(config, dict)
    return config


@contextmanager
def prometheus(config: dict[str, Any], workdir: Path) -> Iterator[httpx.Client]:
    binary = require_tool("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "prometheus.log"
    proc = spawn(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_path=log,
    )
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
        except Exception:
            print(log.read_text(errors="replace")[-3000:])
            raise
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        terminate(proc, grace=10)


def wait_all_up(client: httpx.Client, expected: set[str], timeout: float = 90) -> dict[str, Any]:
    """Poll /api/v1/targets until every expected job's target is up; returns them by job."""
    deadline = time.monotonic() + timeout
    targets: dict[str, Any] = {}
    while time.monotonic() < deadline:
        data = client.get("/api/v1/targets").json()["data"]["activeTargets"]
        targets = {t["labels"]["job"]: t for t in data}
        if set(targets) == expected and all(t["health"] == "up" for t in targets.values()):
            return targets
        time.sleep(0.5)
    report = {job: (t["health"], t.get("lastError")) for job, t in targets.items()}
    raise AssertionError(f"not every target is up after {timeout:.0f}s: {report}")


def query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    body = client.get("/api/v1/query", params={"query": promql}).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


# --- the configs themselves ------------------------------------------------------------------


@pytest.mark.parametrize("path", [LOCAL_CONFIG, COMPOSE_CONFIG], ids=["local", "compose"])
def test_promtool_accepts_the_scrape_config(path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_config_scrapes_every_service_on_loopback_default_ports() -> None:
    expected = {job: [f"127.0.0.1:{port}"] for job, port in DEFAULT_PORTS.items()}
    assert jobs(yaml.safe_load(LOCAL_CONFIG.read_text())) == expected


def test_compose_config_scrapes_every_service_by_its_compose_name() -> None:
    found = jobs(yaml.safe_load(COMPOSE_CONFIG.read_text()))
    for job, target in COMPOSE_TARGETS.items():
        assert found.get(job) == [target], job
    # Prometheus scrapes each service on the port its own healthcheck finds it on.
    compose = yaml.safe_load((ROOT / "docker" / "compose.p2.yml").read_text())["services"]
    for job, target in COMPOSE_TARGETS.items():
        host, port = target.split(":")
        assert host == job and job in compose, f"{job} is scraped but not a compose service"
        assert port in " ".join(compose[job]["healthcheck"]["test"]), job


# --- a real Prometheus against the real services ---------------------------------------------


@pytest.fixture(scope="module")
def stack(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The five P2 services on free loopback ports, each started once its dependencies are up."""
    home = tmp_path_factory.mktemp("prom-stack")
    env_home = {"P2_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    servers: list[RunningServer] = []
    procs: list[subprocess.Popen[bytes]] = []

    def serve(name: str, port: int, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = home / "logs" / f"{name}.log"
        argv = [sys.executable, "-m", "p2", "serve", name, "--port", str(port), *args]
        proc = spawn(argv, env={**env_home, **env}, log_path=log)
        procs.append(proc)
        return proc

    def healthy(name: str, port: int, proc: subprocess.Popen[bytes]) -> None:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", timeout=300, proc=proc)
        except Exception:
            print((home / "logs" / f"{name}.log").read_text(errors="replace")[-3000:])
            raise

    try:
        ports = {job: free_port() for job in ("gateway", "rag", "embedding")}
        # embedding loads while the inference servers start, as compose and p2 up do.
        embedding = serve("embedding", ports["embedding"], {"EMBEDDING_THREADS": "1"})
        chat = start_inference(home, model=tiny_gguf, role="chat")
        servers.append(chat)
        code = start_inference(home, model=tiny_gguf, role="code")
        servers.append(code)
        ports["inference-chat"], ports["inference-code"] = chat.port, code.port
        healthy("embedding", ports["embedding"], embedding)

        gateway_config = home / "litellm.yaml"
        gateway_config.write_text(
            (ROOT / "config" / "litellm.yaml")
            .read_text()
            .replace("127.0.0.1:8001", f"127.0.0.1:{chat.port}")
            .replace("127.0.0.1:8004", f"127.0.0.1:{code.port}")
        )
        embedding_url = f"http://127.0.0.1:{ports['embedding']}"
        gateway = serve(
            "gateway",
            ports["gateway"],
            {"EMBEDDING_URL": embedding_url},
            "--config",
            str(gateway_config),
        )
        healthy("gateway", ports["gateway"], gateway)
        rag = serve(
            "rag",
            ports["rag"],
            {
                "EMBEDDING_URL": embedding_url,
                "RAG_GATEWAY_URL": f"http://127.0.0.1:{ports['gateway']}",
                "QDRANT_PATH": str(home / "qdrant"),
            },
        )
        healthy("rag", ports["rag"], rag)
        yield ports
    finally:
        for proc in reversed(procs):
            terminate(proc, grace=10)
        for server in servers:
            stop(server)


def test_prometheus_sees_every_p2_service_up(stack: dict[str, int], tmp_path: Path) -> None:
    with prometheus(for_test(stack), tmp_path / "prometheus") as client:
        targets = wait_all_up(client, set(SERVICE_JOBS))
        for job in SERVICE_JOBS:
            assert targets[job]["scrapeUrl"] == f"http://127.0.0.1:{stack[job]}/metrics"

        up = {r["metric"]["job"]: r["value"][1] for r in query(client, "up")}
        assert up == dict.fromkeys(SERVICE_JOBS, "1")
        # Real P2 metrics arrive: the gateway reports its backends (both inference servers
        # and the embedding service) in rotation.
        backends = {
            r["metric"]["backend"]: r["value"][1] for r in query(client, "p2_gateway_backend_up")
        }
        assert backends == {
            f"127.0.0.1:{stack['inference-chat']}": "1",
            f"127.0.0.1:{stack['inference-code']}": "1",
            f"127.0.0.1:{stack['embedding']}": "1",
        }


def test_prometheus_shows_a_service_that_does_not_answer_down(
    stack: dict[str, int], tmp_path: Path
) -> None:
    """A target with nothing behind it is ``down``, next to healthy ones: what alerts fire on."""
    ports = {"inference-chat": stack["inference-chat"], "gateway": stack["gateway"]}
    ports["rag"] = free_port()  # nothing listens there
    with prometheus(for_test(ports), tmp_path / "prometheus") as client:
        deadline = time.monotonic() + 60
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            data = client.get("/api/v1/targets").json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in data}
            if health == {"inference-chat": "up", "gateway": "up", "rag": "down"}:
                break
            time.sleep(0.5)
        assert health == {"inference-chat": "up", "gateway": "up", "rag": "down"}


def test_prometheus_sees_the_supervisor_of_p2_up(tiny_gguf: Path, tmp_path: Path) -> None:
    """``p2 up``'s own metrics endpoint is a target too, with the restart counters."""
    env = {
        "P2_HOME": str(tmp_path / "home"),
        "CHAT_PORT": str(free_port()),
        "CHAT_MODEL_PATH": str(tiny_gguf),
        "P2_SUPERVISOR_METRICS_PORT": str(free_port()),
        "P2_HEALTH_INTERVAL": "0.5",
        "P2_HEALTH_TIMEOUT": "1",
        "HF_HUB_OFFLINE": "1",
    }

    def p2(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "p2", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    try:
        started = p2("up", "--detach", "--only", "inference-chat")
        assert started.returncode == 0, started.stdout + started.stderr
        ports = {
            "inference-chat": int(env["CHAT_PORT"]),
            "p2-supervisor": int(env["P2_SUPERVISOR_METRICS_PORT"]),
        }
        with prometheus(for_test(ports), tmp_path / "prometheus") as client:
            wait_all_up(client, set(ports))
            restarts = query(client, "p2_supervisor_restarts_total")
            assert {r["metric"]["service"]: r["value"][1] for r in restarts} == {
                "inference-chat": "0"
            }
    finally:
        p2("down")


def test_prometheus_scrapes_the_job_metrics(tmp_path: Path) -> None:
    """The job API and a worker run for real; Prometheus sees jobs by status and the worker."""
    from tests.jobs.helpers import JobStack, RedisServer, http

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {
        "P2_HOME": str(tmp_path / "home"),
        "REDIS_URL": redis.url,
        "JOBS_TEST_MODELS": "1",
        "WORKER_HEARTBEAT_INTERVAL": "0.5",
    }
    jobs_stack = JobStack(tmp_path / "home", env)
    try:
        api = jobs_stack.api()
        jobs_stack.worker("scraped")
        client = http(api.url)
        job = client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()
        assert client.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()["status"] == (
            "succeeded"
        )
        with prometheus(for_test({"jobs": api.port}), tmp_path / "prometheus") as prom:
            wait_all_up(prom, {"jobs"})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not query(prom, "p2_jobs_worker_up"):
                time.sleep(0.5)
            workers = {
                r["metric"]["worker"]: r["value"][1] for r in query(prom, "p2_jobs_worker_up")
            }
            assert workers == {"scraped@test": "1"}
            done = query(prom, 'p2_jobs_jobs{task="test",status="succeeded"}')
            assert [r["value"][1] for r in done] == ["1"]
    finally:
        jobs_stack.close()
        redis.stop()
