"""Jobs on real workers: the job API and ``python -m jobs.worker`` processes on a real
Redis and database, end to end."""

from __future__ import annotations

import hashlib
import re
import secrets

import httpx
import pytest

from tests.jobs.helpers import JobStack, Postgres, children, http, wait_for


def _run(client: httpx.Client, body: dict[str, object], wait: float = 30) -> dict:
    job = client.post("/v1/jobs", json=body)
    assert job.status_code == 201, job.text
    done = client.get(f"/v1/jobs/{job.json()['id']}", params={"wait": wait}).json()
    assert done["status"] in ("succeeded", "failed", "cancelled"), done
    return done


def test_a_job_with_an_input_file_runs_and_serves_its_result_and_artifact(
    stack: JobStack,
) -> None:
    api = stack.api()
    stack.worker()
    client = http(api.url)
    data = secrets.token_bytes(2048)
    uploaded = client.post(
        "/v1/files", files={"file": ("in.bin", data)}, data={"purpose": "user_data"}
    ).json()
    body = {
        "task": "test",
        "model": "echo",
        "input": {"image_file_id": uploaded["id"], "n": 7},
        "config": {"artifact": True},
    }
    done = _run(client, body)
    assert (done["status"], done["progress"], done["attempts"]) == ("succeeded", 1.0, 1)
    result = client.get(f"/v1/jobs/{done['id']}/result").json()
    assert result["data"]["echo"] == body["input"]
    assert result["data"]["files"] == {uploaded["id"]: hashlib.sha256(data).hexdigest()}
    assert result["data"]["device"] == "cpu"
    [artifact] = result["files"]
    content = client.get(f"/v1/files/{artifact['id']}/content").content
    assert content == b'{"image_file_id":"%s","n":7}' % uploaded["id"].encode()
    assert artifact["sha256"] == hashlib.sha256(content).hexdigest()
    assert artifact["purpose"] == "job_output" and artifact["filename"] == "echo.json"


def test_a_result_too_large_for_the_database_is_kept_as_a_file(stack: JobStack) -> None:
    api = stack.api()
    stack.worker()
    client = http(api.url)
    done = _run(client, {"task": "test", "model": "echo", "config": {"pad": 400_000}})
    result = client.get(f"/v1/jobs/{done['id']}/result").json()
    assert len(result["data"]["pad"]) == 400_000 and result["files"] == []


def test_failures_carry_their_code_and_message(stack: JobStack) -> None:
    api = stack.api()
    stack.worker()
    client = http(api.url)
    failed = _run(client, {"task": "test", "model": "echo", "config": {"fail": "no cells"}})
    assert failed["status"] == "failed"
    assert failed["error"] == {"message": "no cells", "code": "echo_failed"}
    rejected = _run(client, {"task": "test", "model": "echo", "config": {"reject": "bad box"}})
    assert rejected["error"] == {"message": "bad box", "code": "invalid_input"}


def test_progress_shows_while_running_and_cancel_kills_the_child(stack: JobStack) -> None:
    api = stack.api()
    worker = stack.worker()
    client = http(api.url)
    job = client.post(
        "/v1/jobs", json={"task": "test", "model": "echo", "config": {"sleep": 60}}
    ).json()
    running = wait_for(
        lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["progress"] > 0 and j,
        30,
        "progress",
    )
    assert running["status"] == "running" and running["started_at"] is not None
    [child] = children(worker.proc.pid)
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    wait_for(lambda: child not in children(worker.proc.pid), 10, "the child to be killed")
    again = _run(client, {"task": "test", "model": "echo", "input": {"after": "cancel"}})
    assert again["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_metrics_count_jobs_and_workers(stack: JobStack) -> None:
    api = stack.api()
    stack.worker("m")
    client = http(api.url)
    _run(client, {"task": "test", "model": "echo"})
    client.post("/v1/jobs", json={"task": "test", "model": "nope"})

    def scraped() -> str | None:
        text = client.get("/metrics").text
        return text if "p2_jobs_run_seconds_count" in text else None

    text = wait_for(scraped, 15, "the finished job in the histograms")
    assert 'p2_jobs_jobs{status="succeeded",task="test"} 1.0' in text
    assert 'p2_jobs_jobs{status="queued",task="test"} 0.0' in text
    assert 'p2_jobs_worker_up{worker="m@test"} 1.0' in text
    assert "p2_jobs_broker_up 1.0" in text and "p2_jobs_queue_depth 0.0" in text
    assert 'p2_jobs_submitted_total{task="test"} 1.0' in text
    assert re.search(r'p2_jobs_requests_total\{route="/v1/jobs",status="400"\} 1\.0', text)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_whole_path_runs_on_postgres(
    stack: JobStack, database_url: str, postgres: Postgres
) -> None:
    stack.env["DATABASE_URL"] = database_url
    api = stack.api()
    stack.worker()
    done = _run(http(api.url), {"task": "test", "model": "spin", "input": {"iterations": 1000}})
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert not (stack.home / "jobs.db").exists()
