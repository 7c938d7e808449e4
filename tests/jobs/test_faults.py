"""The faults the job platform must survive, on real processes: a worker child or a whole
worker killed mid-job, Redis restarted, a wedged worker, a busy one, a duplicate message."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from jobs import db
from jobs.db import connect
from jobs.queue import Dispatcher, celery_app
from p2.core.process import free_port
from p2.supervisor.spec import Probe, ServiceSpec
from p2.supervisor.supervisor import Supervisor
from tests.jobs.helpers import (
    JobStack,
    RedisServer,
    children,
    http,
    kill,
    runner_pid,
    wait_for,
)

SLEEPY = {"task": "test", "model": "echo", "config": {"sleep": 3, "artifact": True}}


def _events(client: httpx.Client, job_id: str) -> list[tuple[str, str]]:
    data = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    return [(e["from"], e["to"]) for e in data]


def _runner(stack: JobStack, job_id: str) -> str | None:
    engine = connect(f"sqlite:///{stack.home / 'jobs.db'}")
    try:
        with engine.connect() as conn:
            query = sa.select(db.jobs.c.runner).where(db.jobs.c.id == job_id)
            return conn.execute(query).scalar()
    finally:
        engine.dispose()


def _started(client: httpx.Client, job_id: str) -> None:
    wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 30, "start")


def _finished(client: httpx.Client, job_id: str, wait: float = 60) -> dict:
    return client.get(f"/v1/jobs/{job_id}", params={"wait": wait}).json()


def test_a_child_killed_mid_job_runs_it_again_and_it_succeeds_once(stack: JobStack) -> None:
    api = stack.api()
    stack.worker()
    client = http(api.url)
    job = client.post("/v1/jobs", json=SLEEPY).json()
    _started(client, job["id"])
    first = _runner(stack, job["id"])
    kill(runner_pid(first))
    done = _finished(client, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert _events(client, job["id"]) == [
        ("queued", "running"),
        ("running", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert len(result["files"]) == 1  # the artifact of the run that finished, no other
    outputs = client.get("/v1/files", params={"purpose": "job_output"}).json()["data"]
    assert [f["id"] for f in outputs] == [result["files"][0]["id"]]


def test_a_whole_worker_killed_mid_job_hands_the_job_to_another(stack: JobStack) -> None:
    api = stack.api(JOBS_LOST_AFTER="2")
    doomed = stack.worker("doomed")
    client = http(api.url)
    job = client.post("/v1/jobs", json={**SLEEPY, "config": {"sleep": 2}}).json()
    _started(client, job["id"])
    stack.worker("rescuer")
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # the machine running it is gone
    done = _finished(client, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert _events(client, job["id"])[1] == ("running", "queued")


def test_queued_jobs_survive_a_redis_restart_and_a_redis_outage(
    stack: JobStack, tmp_path: Path
) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    stack.env["REDIS_URL"] = private.url
    try:
        api = stack.api()
        client = http(api.url)
        before = [client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()["id"]]
        before.append(client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()["id"])
        private.restart()  # the messages were only in Redis (and its append-only file)
        private.stop()
        during = client.post("/v1/jobs", json={"task": "test", "model": "echo"})
        assert during.status_code == 201  # accepted: the job waits in the database
        private.start()
        stack.worker()
        for job_id in [*before, during.json()["id"]]:
            done = _finished(client, job_id)
            assert (done["status"], done["attempts"]) == ("succeeded", 1), done
    finally:
        stack.close()
        private.stop()


def test_jobs_redis_lost_are_sent_again_once_a_worker_idles(
    stack: JobStack, redis_server: RedisServer
) -> None:
    api = stack.api(JOBS_REDISPATCH_AFTER="1")
    client = http(api.url)
    job = client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()
    with redis_server.client() as broker:
        assert broker.delete(stack.env["JOBS_QUEUE"]) == 1  # the message is gone
    stack.worker()
    done = _finished(client, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    metrics = client.get("/metrics").text
    assert 'p2_jobs_redispatched_total{reason="idle_worker"} 1.0' in metrics


def test_a_worker_keeps_working_across_a_redis_restart(stack: JobStack, tmp_path: Path) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    stack.env["REDIS_URL"] = private.url
    try:
        api = stack.api()
        stack.worker()
        client = http(api.url)
        private.restart()
        job = client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()
        assert _finished(client, job["id"])["status"] == "succeeded"
    finally:
        stack.close()
        private.stop()


def test_a_busy_worker_with_fresh_heartbeats_stays_healthy(stack: JobStack) -> None:
    api = stack.api()
    worker = stack.worker(WORKER_STALL_TIMEOUT="3")
    client = http(api.url)
    job = client.post("/v1/jobs", json={**SLEEPY, "config": {"sleep": 4}}).json()
    _started(client, job["id"])
    seen = []
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running":
        health = httpx.get(f"{worker.url}/health")
        seen.append((health.status_code, health.json().get("state")))
    assert seen and all(status == 200 for status, _ in seen), seen
    assert ("busy" in {state for _, state in seen}) and seen[-1][1] in ("busy", "idle")


def test_a_job_that_stops_heartbeating_makes_its_worker_unhealthy(stack: JobStack) -> None:
    api = stack.api()
    worker = stack.worker(WORKER_STALL_TIMEOUT="1")
    client = http(api.url)
    job = client.post(
        "/v1/jobs", json={"task": "test", "model": "echo", "config": {"sleep": 4, "silent": True}}
    ).json()
    _started(client, job["id"])
    stalled = wait_for(
        lambda: (r := httpx.get(f"{worker.url}/health")).status_code == 503 and r, 10, "503"
    )
    assert stalled.json()["error"]["code"] == "stalled" and job["id"] in stalled.text
    assert _finished(client, job["id"])["status"] == "succeeded"
    assert httpx.get(f"{worker.url}/health").status_code == 200  # healthy again once done


def test_the_supervisor_restarts_a_wedged_worker_and_the_job_runs_again(
    stack: JobStack, tmp_path: Path
) -> None:
    api = stack.api(JOBS_LOST_AFTER="3")
    client = http(api.url)
    port = free_port()
    spec = ServiceSpec(
        "worker-0",
        (sys.executable, "-m", "jobs.worker", "--name", "wedged@test"),
        port,
        env={**stack.env, "WORKER_PORT": str(port), "WORKER_STALL_TIMEOUT": "2"},
        probe=Probe(interval=0.5, timeout=2, start_period=30, retries=2),
    )
    supervisor = Supervisor([spec], tmp_path / "sup", say=lambda _: None)

    async def scenario() -> dict:
        await supervisor.start()
        try:
            await asyncio.wait_for(supervisor.wait_healthy(), 60)
            job = client.post("/v1/jobs", json={**SLEEPY, "config": {"sleep": 2}}).json()
            await asyncio.to_thread(_started, client, job["id"])
            [child] = children(supervisor.state.services["worker-0"].pid or 0)
            kill(child, signal.SIGSTOP)  # wedged: alive, silent
            await asyncio.to_thread(
                wait_for, lambda: supervisor.state.services["worker-0"].restarts >= 1, 30, "restart"
            )
            return await asyncio.to_thread(_finished, client, job["id"])
        finally:
            await supervisor.stop()

    done = asyncio.run(scenario())
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert "unhealthy: health check answered 503" in (
        supervisor.state.services["worker-0"].last_error or ""
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_message_delivered_twice_runs_the_job_once(stack: JobStack, workers: int) -> None:
    api = stack.api()
    for n in range(workers):
        stack.worker(f"w{n}")
    client = http(api.url)
    job = client.post("/v1/jobs", json={**SLEEPY, "config": {"sleep": 1, "artifact": True}}).json()
    app = celery_app(stack.env["REDIS_URL"], queue=stack.env["JOBS_QUEUE"], visibility_timeout=60)
    assert Dispatcher(app, stack.env["JOBS_QUEUE"]).send(job["id"])  # a second copy
    done = _finished(client, job["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert _events(client, job["id"]) == [("queued", "running"), ("running", "succeeded")]
    assert len(client.get(f"/v1/jobs/{job['id']}/result").json()["files"]) == 1
