"""The issue's SDK snippet end to end against ``p2 up`` (Redis, the job service, a CPU
worker, both inference servers on the tiny GGUF, the embedding service and the gateway):
fine-tune ``chat`` and ``embedding``, then use both results through the gateway."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from p2.core.process import free_port
from tests.jobs.finetune.helpers import chat_lines, pair_lines


def _ask(client: openai.OpenAI, model: str) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "the a is of"}],
        max_tokens=8,
        temperature=0,
    )


@pytest.fixture
def stack(tmp_path: Path, tiny_gguf: Path, converter: Path) -> Iterator[str]:
    """``p2 up --detach`` on free ports in a fresh P2_HOME; the gateway's /v1 URL."""
    ports = {
        name: str(free_port())
        for name in ("GATEWAY", "CHAT", "CODE", "EMBEDDING", "RAG", "JOBS", "REDIS", "WORKER")
    }
    env = {
        **os.environ,
        **{f"{name}_PORT": port for name, port in ports.items()},
        "P2_HOME": str(tmp_path / "home"),
        "P2_SUPERVISOR_METRICS_PORT": "0",
        "WORKER_GPUS": "none",
        "CHAT_MODEL_PATH": str(tiny_gguf),
        "CODE_MODEL_PATH": str(tiny_gguf),
        "EMBEDDING_BACKEND": "torch",
        "FINETUNE_THREADS": "1",
    }
    for name in ("REDIS_URL", "P2_API_KEYS", "P2_ADMIN_KEYS", "GATEWAY_CONFIG"):
        env.pop(name, None)

    def p2(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "p2", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)

    up = p2("up", "--detach", "--only", "gateway,worker-cpu0")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"http://127.0.0.1:{ports['GATEWAY']}/v1"
    finally:
        assert p2("down").returncode == 0


def _succeeded(client: openai.OpenAI, job_id: str) -> openai.types.fine_tuning.FineTuningJob:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            assert job.status == "succeeded", job.error
            return job
        time.sleep(0.5)
    raise AssertionError(f"{job_id} did not finish")


def test_the_sdk_fine_tunes_chat_and_embedding_and_uses_both_through_the_gateway(
    stack: str,
) -> None:
    client = openai.OpenAI(base_url=stack, api_key="none", max_retries=0)
    f = client.files.create(file=("train.jsonl", io.BytesIO(chat_lines(12))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        training_file=f.id,
        model="chat",
        hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 50},
        suffix="e2e",
    )
    done = _succeeded(client, job.id)
    assert done.fine_tuned_model == f"ft:chat:e2e:{job.id}"
    assert done.fine_tuned_model in {m.id for m in client.models.list()}
    tuned = _ask(client, done.fine_tuned_model)
    base = _ask(client, "chat")
    assert tuned.model == done.fine_tuned_model
    assert tuned.choices[0].message.content != base.choices[0].message.content
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any(e.type == "metrics" for e in events)

    data = ("pairs.jsonl", io.BytesIO(pair_lines(8)))
    pairs = client.files.create(file=data, purpose="fine-tune")
    embedding_job = client.fine_tuning.jobs.create(
        training_file=pairs.id, model="embedding", hyperparameters={"n_epochs": 1}, suffix="e2e"
    )
    tuned_embedding = _succeeded(client, embedding_job.id).fine_tuned_model
    assert tuned_embedding == f"ft:embedding:e2e:{embedding_job.id}"
    vectors = client.embeddings.create(model=tuned_embedding, input=["package 3 summary"])
    assert len(vectors.data[0].embedding) == 384 and vectors.model == tuned_embedding
