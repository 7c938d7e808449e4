"""Fine-tuning on real job platform processes (API, worker, training subprocess) with the
tiny random GGUF: train, checkpoint, convert, publish; resume after a killed worker;
cancel; an embedding model."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import llama_cpp

from tests.jobs.finetune.helpers import chat_lines, pair_lines
from tests.jobs.helpers import JobStack, children, http, kill, runner_pid, wait_for
from tests.jobs.test_faults import _runner

JOBS = "/v1/fine_tuning/jobs"


def _upload(client: httpx.Client, content: bytes) -> str:
    files = {"file": ("data.jsonl", content, "application/jsonl")}
    response = client.post("/v1/files", files=files, data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post(JOBS, json=body)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _final(client: httpx.Client, job_id: str, within: float = 240) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"{JOBS}/{job_id}", params={"wait": 10}).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(check, within, f"job {job_id} to finish", every=0.2)


def _events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    page = client.get(f"{JOBS}/{job_id}/events", params={"limit": 1000}).json()
    return list(reversed(page["data"]))  # oldest first


def _trainers(job: dict[str, Any], stack: JobStack) -> list[int]:
    """The training subprocesses of the pool child running ``job``."""
    return children(runner_pid(_runner(stack, job["id"])))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(") ", 1)[-1][:1] != "Z"
    return False


def test_a_chat_job_trains_checkpoints_converts_and_publishes_its_adapter(
    ft_stack: JobStack, tiny_gguf: Path
) -> None:
    client = http(ft_stack.api().url)
    ft_stack.worker()
    training = _upload(client, chat_lines(12))
    job = _create(
        client,
        model="chat",
        training_file=training,
        validation_file=_upload(client, chat_lines(6)),
        hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 10},
        suffix="tiny",
    )
    done = _final(client, job["id"])
    assert done["status"] == "succeeded", done
    name = f"ft:chat:tiny:{job['id']}"
    assert done["fine_tuned_model"] == name and done["trained_tokens"] > 0
    adapter = ft_stack.home / "adapters" / f"{job['id']}.gguf"
    card = json.loads(adapter.with_suffix(".json").read_text())
    assert card == {"base": "chat", "suffix": "tiny"}  # what the inference server checks
    llm = llama_cpp.Llama(str(tiny_gguf), n_ctx=128, verbose=False)
    assert llama_cpp.llama_adapter_lora_init(llm.model, str(adapter).encode())  # fits the base
    events = _events(client, job["id"])
    steps = [e["data"] for e in events if e["type"] == "metrics" and "train_loss" in e["data"]]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    evals = [e["data"] for e in events if e["type"] == "metrics" and "valid_loss" in e["data"]]
    assert [v["step"] for v in evals] == [0, 3, 6]  # before training, then each epoch
    assert evals[-1]["valid_loss"] < evals[0]["valid_loss"]  # it learned "the the"
    messages = [e["message"] for e in events]
    assert f"New fine-tuned model created: {name}" in messages
    assert messages[-1] == "The job has successfully completed"
    checkpoints = client.get(f"{JOBS}/{job['id']}/checkpoints").json()["data"]
    assert [(c["step_number"], c["epoch"]) for c in checkpoints] == [(6, 2), (3, 1)]
    assert all("valid_loss" in c["metrics"] for c in checkpoints)
    [table] = done["result_files"]
    rows = client.get(f"/v1/files/{table}/content").text.splitlines()
    assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_accuracy"
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3", "4", "5", "6"]
    assert not (ft_stack.home / "files" / "finetune" / job["id"]).exists()  # work folder gone
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [name]


def test_a_worker_killed_mid_training_resumes_from_its_last_checkpoint(
    ft_stack: JobStack,
) -> None:
    client = http(ft_stack.api().url)
    ft_stack.worker()
    job = _create(
        client,
        model="chat",
        training_file=_upload(client, chat_lines(600)),
        hyperparameters={"n_epochs": 3, "batch_size": 4},
    )

    def first_checkpoint() -> bool:
        return bool(client.get(f"{JOBS}/{job['id']}/checkpoints").json()["data"])

    wait_for(first_checkpoint, 120, "the first epoch's checkpoint", every=0.02)
    trainers = _trainers(job, ft_stack)
    kill(runner_pid(_runner(ft_stack, job["id"])))  # the pool child, mid-epoch 2
    wait_for(lambda: not any(_alive(p) for p in trainers), 10, "its trainer to die with it")
    done = _final(client, job["id"])
    assert done["status"] == "succeeded", done
    assert client.get(f"/v1/jobs/{job['id']}").json()["attempts"] == 2
    events = _events(client, job["id"])
    transitions = [e["data"]["to"] for e in events if "to" in (e["data"] or {})]
    assert transitions == ["queued", "running", "queued", "running", "succeeded"]
    resumed = [e["message"] for e in events if e["message"].startswith("Resumed from")]
    assert resumed == ["Resumed from the checkpoint at step 150"]
    steps = [e["data"]["step"] for e in events if e["type"] == "metrics"]
    assert steps == list(range(1, 451))  # every step reported once, none twice
    checkpoints = client.get(f"{JOBS}/{job['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [450, 300, 150]
    assert (ft_stack.home / "adapters" / f"{job['id']}.gguf").is_file()


def test_cancel_kills_the_training_and_frees_the_worker(ft_stack: JobStack) -> None:
    client = http(ft_stack.api().url)
    ft_stack.worker()
    job = _create(
        client,
        model="code",
        training_file=_upload(client, chat_lines(600)),
        hyperparameters={"n_epochs": 50, "batch_size": 2},
    )

    def training() -> bool:
        return any(e["type"] == "metrics" for e in _events(client, job["id"]))

    wait_for(training, 120, "the first step")
    trainers = _trainers(job, ft_stack)
    assert trainers
    cancelled = client.post(f"{JOBS}/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    wait_for(lambda: not any(_alive(p) for p in trainers), 10, "the trainer to be killed")
    echo = client.post("/v1/jobs", json={"task": "test", "model": "echo"}).json()

    def echoed() -> bool:
        job = client.get(f"/v1/jobs/{echo['id']}", params={"wait": 10}).json()
        return bool(job["status"] == "succeeded")

    wait_for(echoed, 90, "the next job on the same worker")


def test_an_embedding_job_publishes_a_sentence_transformers_model(ft_stack: JobStack) -> None:
    client = http(ft_stack.api().url)
    ft_stack.worker()
    job = _create(
        client,
        model="embedding",
        training_file=_upload(client, pair_lines(8)),
        validation_file=_upload(client, pair_lines(4)),
        hyperparameters={"n_epochs": 1, "batch_size": 4},
        suffix="pkgs",
    )
    done = _final(client, job["id"])
    assert done["status"] == "succeeded", done
    name = f"ft:embedding:pkgs:{job['id']}"
    folder = ft_stack.home / "models" / "embedding" / "ft" / job["id"]
    assert json.loads((folder / "p2-model.json").read_text()) == {"id": name}
    assert (folder / "modules.json").is_file() and (folder / "config.json").is_file()
    evals = [e["data"] for e in _events(client, job["id"]) if "valid_recall_at_1" in e["data"]]
    assert [e["step"] for e in evals] == [0, 2]
    assert done["fine_tuned_model"] == name
