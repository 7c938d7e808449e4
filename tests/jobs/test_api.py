"""The job API over HTTP (in-process, real Redis, no worker): validation, scopes,
idempotency, lists, cancel and results, in OpenAI's error format."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from jobs.states import Status
from jobs.store import JobStore
from testkit.openai_errors import assert_openai_error
from tests.jobs.conftest import ADMIN, USER_A, USER_B, api_client, bearer, wait_ready
from tests.jobs.helpers import RedisServer

ECHO = {"task": "test", "model": "echo", "input": {"x": 1}}


def _submit(api: TestClient, key: str = USER_A, body: dict[str, object] | None = None) -> dict:
    response = api.post("/v1/jobs", json=body or ECHO, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_submitted_job_is_queued_first_in_line(api: TestClient) -> None:
    job = _submit(api)
    assert job["id"].startswith("job-") and job["object"] == "job"
    assert (job["status"], job["queue_position"], job["attempts"]) == ("queued", 0, 0)
    second = _submit(api)
    assert second["queue_position"] == 1
    shown = api.get(f"/v1/jobs/{job['id']}", headers=bearer(USER_A)).json()
    assert shown["status"] == "queued" and shown["progress"] == 0.0 and shown["error"] is None


def test_an_unknown_field_is_refused_by_name(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={**ECHO, "priority": 3}, headers=bearer(USER_A))
    assert_openai_error(response, 400, code="unknown_parameter", param="priority")
    response = api.post("/v1/jobs", json={"task": "test"}, headers=bearer(USER_A))
    assert_openai_error(response, 400, param="model", contains="model")


def test_unknown_models_and_bad_inputs_are_400s_naming_what_is_known(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={**ECHO, "model": "nope"}, headers=bearer(USER_A))
    assert_openai_error(response, 400, code="model_not_found", param="model", contains="echo, spin")
    response = api.post("/v1/jobs", json={**ECHO, "task": "nope"}, headers=bearer(USER_A))
    assert_openai_error(response, 400, param="task", contains="Known tasks")
    bad = {**ECHO, "config": {"sleep": -1}}
    response = api.post("/v1/jobs", json=bad, headers=bearer(USER_A))
    assert_openai_error(response, 400, code="invalid_input", param="config.sleep")


def test_large_inputs_must_travel_as_files(api: TestClient) -> None:
    big = {**ECHO, "input": {"data": "x" * 300_000}}
    response = api.post("/v1/jobs", json=big, headers=bearer(USER_A))
    assert_openai_error(response, 413, code="input_too_large", contains="/v1/files")
    huge = b'{"task": "test", "model": "echo", "input": {"d": "' + b"x" * 2_000_000 + b'"}}'
    response = api.post("/v1/jobs", content=huge, headers=bearer(USER_A))
    assert_openai_error(response, 413, code="request_too_large")


def test_the_same_idempotency_key_returns_the_same_job(api: TestClient) -> None:
    headers = {**bearer(USER_A), "Idempotency-Key": "retry-1"}
    first = api.post("/v1/jobs", json=ECHO, headers=headers)
    again = api.post("/v1/jobs", json=ECHO, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    changed = api.post("/v1/jobs", json={**ECHO, "input": {"x": 2}}, headers=headers)
    assert_openai_error(changed, 409, code="idempotency_key_reused", contains="retry-1")
    other = api.post(
        "/v1/jobs", json=ECHO, headers={**bearer(USER_B), "Idempotency-Key": "retry-1"}
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_users_see_only_their_jobs_and_admins_see_all(api: TestClient) -> None:
    mine, theirs = _submit(api, USER_A), _submit(api, USER_B)
    for path in ("", "/result", "/events"):
        response = api.get(f"/v1/jobs/{theirs['id']}{path}", headers=bearer(USER_A))
        assert_openai_error(response, 404, code="job_not_found")
    response = api.post(f"/v1/jobs/{theirs['id']}/cancel", headers=bearer(USER_A))
    assert_openai_error(response, 404, code="job_not_found")
    listed = api.get("/v1/jobs", headers=bearer(USER_A)).json()
    assert [j["id"] for j in listed["data"]] == [mine["id"]]
    everyone = api.get("/v1/jobs", headers=bearer(ADMIN)).json()
    assert {j["id"] for j in everyone["data"]} == {mine["id"], theirs["id"]}
    assert api.get(f"/v1/jobs/{theirs['id']}", headers=bearer(ADMIN)).status_code == 200
    cancelled = api.post(f"/v1/jobs/{theirs['id']}/cancel", headers=bearer(ADMIN)).json()
    assert cancelled["status"] == "cancelled"


def test_keys_are_required_and_probes_stay_open(api: TestClient) -> None:
    assert_openai_error(api.get("/v1/jobs"), 401, code="invalid_api_key")
    assert_openai_error(api.get("/v1/jobs", headers=bearer("sk-wrong")), 401)
    assert api.get("/health").status_code == 200
    assert api.get("/metrics").status_code == 200


def test_without_keys_everyone_is_anonymous_and_sees_everything(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with api_client(tmp_path, redis_server.url) as client:
        wait_ready(client)
        job = client.post("/v1/jobs", json=ECHO).json()
        store: JobStore = client.app.state.service.store  # type: ignore[attr-defined]
        stored = store.get(job["id"])
        assert stored is not None and stored.owner == "anonymous"
        assert client.get("/v1/jobs").json()["data"][0]["id"] == job["id"]


def test_lists_paginate_with_a_cursor_and_filter(api: TestClient) -> None:
    ids = [_submit(api)["id"] for _ in range(5)]
    first = api.get("/v1/jobs", params={"limit": 2}, headers=bearer(USER_A)).json()
    assert first["object"] == "list" and first["has_more"]
    assert [j["id"] for j in first["data"]] == [ids[4], ids[3]]
    assert (first["first_id"], first["last_id"]) == (ids[4], ids[3])
    rest = api.get(
        "/v1/jobs", params={"limit": 10, "after": first["last_id"]}, headers=bearer(USER_A)
    ).json()
    assert [j["id"] for j in rest["data"]] == [ids[2], ids[1], ids[0]] and not rest["has_more"]
    api.post(f"/v1/jobs/{ids[1]}/cancel", headers=bearer(USER_A))
    cancelled = api.get("/v1/jobs", params={"status": "cancelled"}, headers=bearer(USER_A))
    assert [j["id"] for j in cancelled.json()["data"]] == [ids[1]]
    bad = api.get("/v1/jobs", params={"status": "done"}, headers=bearer(USER_A))
    assert_openai_error(bad, 400, param="status", contains="succeeded")
    assert_openai_error(api.get("/v1/jobs", params={"limit": 0}, headers=bearer(USER_A)), 400)


def test_cancel_and_result_follow_the_lifecycle(api: TestClient) -> None:
    job = _submit(api)
    response = api.get(f"/v1/jobs/{job['id']}/result", headers=bearer(USER_A))
    assert_openai_error(response, 409, code="job_not_succeeded", contains="queued")
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel", headers=bearer(USER_A)).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    again = api.post(f"/v1/jobs/{job['id']}/cancel", headers=bearer(USER_A))
    assert_openai_error(again, 409, code="job_not_cancellable", contains="cancelled")
    events = api.get(f"/v1/jobs/{job['id']}/events", headers=bearer(USER_A)).json()["data"]
    assert [(e["from"], e["to"]) for e in events] == [("queued", "cancelled")]


def test_a_finished_job_serves_its_result(api: TestClient) -> None:
    job = _submit(api)
    store: JobStore = api.app.state.service.store  # type: ignore[attr-defined]
    assert store.claim(job["id"], "r1", alive=lambda _: True, max_attempts=3)
    assert store.move(
        job["id"], Status.SUCCEEDED, expect=Status.RUNNING, held_by="r1", result={"answer": 42}
    )
    shown = api.get(f"/v1/jobs/{job['id']}", params={"wait": 5}, headers=bearer(USER_A)).json()
    assert shown["status"] == "succeeded" and shown["attempts"] == 1
    result = api.get(f"/v1/jobs/{job['id']}/result", headers=bearer(USER_A)).json()
    assert result == {
        "object": "job.result",
        "job_id": job["id"],
        "task": "test",
        "model": "echo",
        "data": {"answer": 42},
        "files": [],
    }
