"""The fine-tuning API in the job service (in-process, real Redis, no worker): OpenAI's
shapes, files validated before the queue with the bad line named, scopes, events,
checkpoints and the fine-tuned models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from jobs.journal import JobJournal
from jobs.states import Status
from jobs.store import JobStore
from testkit.openai_errors import assert_openai_error
from tests.jobs.conftest import ADMIN, USER_A, USER_B, bearer
from tests.jobs.finetune.helpers import chat_lines, pair_lines, upload
from tests.jobs.helpers import wait_for

JOBS = "/v1/fine_tuning/jobs"


def _create(api: TestClient, key: str = USER_A, **body: Any) -> dict[str, Any]:
    response = api.post(JOBS, json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _settled(api: TestClient, job_id: str, key: str = USER_A) -> dict[str, Any]:
    """The job once its files have been validated (queued or failed)."""

    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"{JOBS}/{job_id}", headers=bearer(key)).json()
        return job if job["status"] != "validating_files" else None

    return wait_for(check, 20, "the files to be validated")


def _store(api: TestClient) -> JobStore:
    store: JobStore = api.app.state.service.store  # type: ignore[attr-defined]
    return store


def test_a_job_validates_its_files_then_queues_in_openai_shape(api: TestClient) -> None:
    training = upload(api, chat_lines(20))
    job = _create(
        api, model="chat", training_file=training["id"], hyperparameters={"n_epochs": 2}, seed=7
    )
    assert job["status"] in ("validating_files", "queued")
    FineTuningJob.model_validate(job)  # the official SDK's own type reads it
    queued = _settled(api, job["id"])
    FineTuningJob.model_validate(queued)
    assert queued["status"] == "queued" and queued["queue_position"] == 0
    assert queued["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 8,
        "learning_rate_multiplier": 1.0,
    }
    assert (queued["seed"], queued["training_file"]) == (7, training["id"])
    assert queued["fine_tuned_model"] is None and queued["error"] is None
    events = api.get(f"{JOBS}/{job['id']}/events", headers=bearer(USER_A)).json()["data"]
    assert [e["message"] for e in events][:2] == [
        "Files validated, moving job to queued state",
        "Files validated: 20 training examples",
    ]
    assert events[-1]["message"] == f"Created fine-tuning job: {job['id']}"
    for event in events:
        FineTuningJobEvent.model_validate(event)


def test_a_bad_training_file_fails_in_validation_naming_the_line(api: TestClient) -> None:
    lines = chat_lines(4).decode().splitlines()
    lines[2] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    bad = upload(api, ("\n".join(lines) + "\n").encode())
    job = _create(api, model="chat", training_file=bad["id"])
    failed = _settled(api, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_training_file"
    assert failed["error"]["param"] == "training_file"
    assert "line 3: no assistant message" in failed["error"]["message"]
    stored = _store(api).get(job["id"])
    assert stored is not None and stored.attempts == 0  # no worker ever took it
    events = api.get(f"{JOBS}/{job['id']}/events", headers=bearer(USER_A)).json()["data"]
    assert events[0]["level"] == "error" and "line 3" in events[0]["message"]


def test_each_kind_of_bad_line_is_named(api: TestClient) -> None:
    cases = {
        b"{not json}\n": "line 1: not valid JSON",
        b'{"messages": "hi"}\n': "line 1: expected an object with a 'messages' list",
        b'{"messages": [{"role": "robot", "content": "x"}]}\n': "messages[0].role must be",
        b'\n\n{"messages": [{"role": "assistant", "content": 3}]}\n': (
            "line 3: messages[0].content must be a string"
        ),
        b"\xff\xfe\n": "line 1: not valid UTF-8",
        b"": "the file has no examples",
    }
    for content, expected in cases.items():
        job = _create(api, model="code", training_file=upload(api, content)["id"])
        failed = _settled(api, job["id"])
        assert failed["status"] == "failed", content
        assert expected in failed["error"]["message"], (content, failed["error"])


def test_embedding_jobs_need_pairs_and_check_their_validation_file(api: TestClient) -> None:
    pairs, chat = upload(api, pair_lines(5)), upload(api, chat_lines(3))
    ok = _settled(api, _create(api, model="embedding", training_file=pairs["id"])["id"])
    assert ok["status"] == "queued" and ok["hyperparameters"]["batch_size"] == 5
    wrong = _create(api, model="embedding", training_file=pairs["id"], validation_file=chat["id"])
    failed = _settled(api, wrong["id"])
    assert failed["error"]["code"] == "invalid_validation_file"
    assert failed["error"]["param"] == "validation_file"
    assert "line 1: missing 'query'" in failed["error"]["message"]


def test_requests_that_could_never_run_are_400s(api: TestClient) -> None:
    training = upload(api, chat_lines(3))
    cases = [
        ({"model": "gpt-4o"}, "model", "model_not_found", "chat, code, embedding"),
        ({"training_file": "file-nope"}, "training_file", "file_not_found", "file-nope"),
        ({"suffix": "a:b"}, "suffix", None, "suffix"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", None, "between"),
        ({"method": {"type": "dpo"}}, "method.type", "unsupported_method", "supervised"),
        ({"integrations": [{"type": "wandb"}]}, "integrations", None, "MLFLOW_TRACKING_URI"),
        ({"priority": 1}, "priority", "unknown_parameter", "priority"),
    ]
    for change, param, code, text in cases:
        body = {"model": "chat", "training_file": training["id"], **change}
        response = api.post(JOBS, json=body, headers=bearer(USER_A))
        assert_openai_error(response, 400, param=param, code=code, contains=text)
    other = upload(api, chat_lines(3), key=USER_B)
    response = api.post(
        JOBS, json={"model": "chat", "training_file": other["id"]}, headers=bearer(USER_A)
    )
    assert_openai_error(response, 400, code="file_not_found", param="training_file")
    images = upload(api, chat_lines(3), purpose="user_data")
    response = api.post(
        JOBS, json={"model": "chat", "training_file": images["id"]}, headers=bearer(USER_A)
    )
    assert_openai_error(response, 400, code="invalid_file_purpose", contains="fine-tune")
    generic = {"task": "fine_tuning", "model": "chat", "input": {}}
    response = api.post("/v1/jobs", json=generic, headers=bearer(USER_A))
    assert_openai_error(response, 400, code="invalid_task", contains="/v1/fine_tuning/jobs")


def test_users_see_and_cancel_their_own_jobs_and_admins_all(api: TestClient) -> None:
    mine = _create(api, model="chat", training_file=upload(api, chat_lines(3))["id"])
    theirs_file = upload(api, chat_lines(3), key=USER_B)
    theirs = _create(api, USER_B, model="chat", training_file=theirs_file["id"])
    for path in ("", "/events", "/checkpoints"):
        response = api.get(f"{JOBS}/{theirs['id']}{path}", headers=bearer(USER_A))
        assert_openai_error(response, 404, code="job_not_found")
    response = api.post(f"{JOBS}/{theirs['id']}/cancel", headers=bearer(USER_A))
    assert_openai_error(response, 404, code="job_not_found")
    listed = api.get(JOBS, headers=bearer(USER_A)).json()["data"]
    assert [j["id"] for j in listed] == [mine["id"]]
    everyone = api.get(JOBS, headers=bearer(ADMIN)).json()["data"]
    assert [j["id"] for j in everyone] == [theirs["id"], mine["id"]]
    cancelled = api.post(f"{JOBS}/{theirs['id']}/cancel", headers=bearer(ADMIN)).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    again = api.post(f"{JOBS}/{theirs['id']}/cancel", headers=bearer(ADMIN))
    assert_openai_error(again, 409, code="job_not_cancellable")


def _succeed(api: TestClient, job_id: str, artifact: Path, name: str) -> None:
    """Play the worker: run the job and record a fine-tuned model as its result."""
    store = _store(api)
    wait_for(lambda: store.get(job_id).status is Status.QUEUED, 20, "validation")  # type: ignore[union-attr]
    assert store.claim(job_id, "r1", alive=lambda _: True, max_attempts=3)
    result = {"fine_tuned_model": name, "trained_tokens": 99, "path": str(artifact)}
    assert store.move(job_id, Status.SUCCEEDED, expect=Status.RUNNING, held_by="r1", result=result)


def test_fine_tuned_models_are_listed_for_their_owner_and_deleted_by_an_admin(
    api: TestClient, tmp_path: Path
) -> None:
    job = _create(
        api, model="chat", training_file=upload(api, chat_lines(3))["id"], suffix="debian"
    )
    name = f"ft:chat:debian:{job['id']}"
    adapter = tmp_path / "adapters" / f"{job['id']}.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF")
    adapter.with_suffix(".json").write_text('{"base": "chat", "suffix": "debian"}')
    _succeed(api, job["id"], adapter, name)
    done = api.get(f"{JOBS}/{job['id']}", headers=bearer(USER_A)).json()
    assert (done["fine_tuned_model"], done["trained_tokens"]) == (name, 99)
    owner = _store(api).get(job["id"]).owner  # type: ignore[union-attr]
    models = api.get("/v1/models", headers=bearer(USER_A)).json()["data"]
    card = {"id": name, "object": "model", "created": done["finished_at"], "owned_by": owner}
    assert models == [card]
    assert api.get("/v1/models", headers=bearer(USER_B)).json()["data"] == []
    assert api.get(f"/v1/models/{name}", headers=bearer(USER_A)).json()["id"] == name
    assert_openai_error(api.get(f"/v1/models/{name}", headers=bearer(USER_B)), 404)
    response = api.delete(f"/v1/models/{name}", headers=bearer(USER_A))
    assert_openai_error(response, 403, code="insufficient_scope")
    assert adapter.exists()
    deleted = api.delete(f"/v1/models/{name}", headers=bearer(ADMIN)).json()
    assert deleted == {"id": name, "object": "model", "deleted": True}
    assert not adapter.exists() and not adapter.with_suffix(".json").exists()
    assert api.get("/v1/models", headers=bearer(ADMIN)).json()["data"] == []
    assert_openai_error(api.delete(f"/v1/models/{name}", headers=bearer(ADMIN)), 404)
    # the job keeps its record of the model it made
    assert api.get(f"{JOBS}/{job['id']}", headers=bearer(USER_A)).json()["fine_tuned_model"] == name


def test_events_and_checkpoints_page_newest_first(api: TestClient) -> None:
    job = _create(api, model="chat", training_file=upload(api, chat_lines(3))["id"])
    _settled(api, job["id"])
    journal = JobJournal(_store(api).engine)
    for step in range(1, 6):
        journal.log(
            job["id"], f"Step {step}/5", kind="metrics", data={"step": step, "train_loss": 1 / step}
        )
    for step in (2, 4):
        journal.checkpoint(
            job["id"], step=step, epoch=step // 2, metrics={"train_loss": 0.5}, path=f"/x/{step}"
        )
    first = api.get(f"{JOBS}/{job['id']}/events", params={"limit": 2}, headers=bearer(USER_A))
    page = first.json()
    assert [e["message"] for e in page["data"]] == ["Step 5/5", "Step 4/5"]
    assert page["has_more"] and page["data"][0]["type"] == "metrics"
    rest = api.get(
        f"{JOBS}/{job['id']}/events",
        params={"limit": 3, "after": page["data"][-1]["id"]},
        headers=bearer(USER_A),
    ).json()
    assert [e["message"] for e in rest["data"]] == ["Step 3/5", "Step 2/5", "Step 1/5"]
    checkpoints = api.get(f"{JOBS}/{job['id']}/checkpoints", headers=bearer(USER_A)).json()
    assert [c["step_number"] for c in checkpoints["data"]] == [4, 2]
    for checkpoint in checkpoints["data"]:
        FineTuningJobCheckpoint.model_validate(checkpoint)
    assert checkpoints["data"][0]["fine_tuned_model_checkpoint"] == (
        f"ft:chat::{job['id']}:ckpt-step-4"
    )
    assert checkpoints["data"][0]["metrics"] == {"step": 4, "train_loss": 0.5}
