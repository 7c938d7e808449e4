"""The official ``openai`` SDK, unchanged, against the job service's fine-tuning API."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from jobs.app import create_app
from jobs.settings import JobsSettings
from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from testkit.threadserver import ThreadServer
from tests.jobs.conftest import ADMIN, USER_A, queue_name
from tests.jobs.finetune.helpers import chat_lines
from tests.jobs.helpers import RedisServer, wait_for


@pytest.fixture
def server(tmp_path: Path, redis_server: RedisServer) -> Iterator[str]:
    settings = JobsSettings.build(redis_url=redis_server.url, queue=queue_name())
    app = create_app(
        settings, CoreSettings.build(home=tmp_path), keyring=Keyring(users=[USER_A], admins=[ADMIN])
    )
    with ThreadServer(app) as running:
        wait_for(lambda: app.state.service.readiness.ready, 30, "the job API")
        yield f"{running.url}/v1"


def test_the_sdk_creates_lists_pages_cancels_and_reads_events(server: str) -> None:
    client = openai.OpenAI(base_url=server, api_key=USER_A, max_retries=0)
    data = ("train.jsonl", io.BytesIO(chat_lines(10)))
    upload = client.files.create(file=data, purpose="fine-tune")
    created = [
        client.fine_tuning.jobs.create(
            training_file=upload.id, model="chat", hyperparameters={"n_epochs": 2}, suffix=f"s{i}"
        )
        for i in range(3)
    ]
    assert created[0].status in ("validating_files", "queued")
    assert created[0].hyperparameters.n_epochs == 2
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == [created[2].id, created[1].id] and first.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == [  # auto-paging
        c.id for c in reversed(created)
    ]

    def queued() -> bool:
        return client.fine_tuning.jobs.retrieve(created[0].id).status == "queued"

    wait_for(queued, 20, "validation")
    cancelled = client.fine_tuning.jobs.cancel(created[0].id)
    assert cancelled.status == "cancelled"
    events = list(client.fine_tuning.jobs.list_events(created[0].id, limit=2))
    assert events[0].message == "Fine-tuning job cancelled"
    assert events[-1].message == f"Created fine-tuning job: {created[0].id}"
    assert list(client.fine_tuning.jobs.checkpoints.list(created[0].id)) == []
    assert client.models.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(f"ft:chat:s0:{created[0].id}")
    admin = openai.OpenAI(base_url=server, api_key=ADMIN, max_retries=0)
    assert {j.id for j in admin.fine_tuning.jobs.list()} == {c.id for c in created}
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(f"ft:chat:s0:{created[0].id}")
    with pytest.raises(openai.NotFoundError):
        admin.models.delete(f"ft:chat:s0:{created[0].id}")  # cancelled: it made no model
