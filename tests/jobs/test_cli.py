"""``p2 jobs list|show|cancel`` against a real job API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from jobs.app import create_app
from jobs.settings import JobsSettings
from jobs.states import Status
from jobs.store import JobStore
from p2.cli import app
from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from testkit.threadserver import ThreadServer
from tests.jobs.conftest import USER_A, bearer, queue_name
from tests.jobs.helpers import RedisServer, wait_for


@pytest.fixture
def served(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, JobStore]]:
    settings = JobsSettings.build(redis_url=redis_server.url, test_models=True, queue=queue_name())
    api = create_app(settings, CoreSettings.build(home=tmp_path), keyring=Keyring(users=[USER_A]))
    with ThreadServer(api) as server:
        url = server.url
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 30, "the job API")
        monkeypatch.setenv("JOBS_URL", url)
        monkeypatch.setenv("P2_API_KEY", USER_A)
        yield url, api.state.service.store


def _submit(url: str) -> str:
    body = {"task": "test", "model": "echo"}
    return str(httpx.post(f"{url}/v1/jobs", json=body, headers=bearer(USER_A)).json()["id"])


def test_list_show_and_cancel(served: tuple[str, JobStore]) -> None:
    url, _ = served
    first, second = _submit(url), _submit(url)
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROGRESS", "TASK", "MODEL", "CREATED"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [second, "queued", "0%"],
        [first, "queued", "0%"],
    ]
    shown = runner.invoke(app, ["jobs", "show", first])
    assert shown.exit_code == 0 and f'"id": "{first}"' in shown.output
    cancelled = runner.invoke(app, ["jobs", "cancel", first])
    assert cancelled.exit_code == 0 and '"status": "cancelled"' in cancelled.output
    again = runner.invoke(app, ["jobs", "cancel", first])
    assert again.exit_code == 1 and "409" in again.output and "already cancelled" in again.output
    missing = runner.invoke(app, ["jobs", "show", "job-nope"])
    assert missing.exit_code == 1 and "No job with id 'job-nope'" in missing.output


def test_show_wait_follows_the_job_until_it_is_final(served: tuple[str, JobStore]) -> None:
    url, store = served
    job_id = _submit(url)

    def work() -> None:
        time.sleep(0.5)
        assert store.claim(job_id, "r1", alive=lambda _: True, max_attempts=3)
        time.sleep(1.2)
        assert store.beat(job_id, "r1", 0.5)
        time.sleep(1.2)
        assert store.move(job_id, Status.FAILED, expect=Status.RUNNING, error_code="boom")

    worker = threading.Thread(target=work)
    worker.start()
    shown = CliRunner().invoke(app, ["jobs", "show", job_id, "--wait"])
    worker.join()
    assert shown.exit_code == 1  # it failed
    assert '"status": "failed"' in shown.output and '"code": "boom"' in shown.output
