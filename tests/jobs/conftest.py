"""Fixtures of the job platform's tests: a real Redis, SQLite and a real PostgreSQL,
the job API in-process (fast API tests) and as processes beside real workers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from jobs.app import create_app
from jobs.db import connect, create_schema
from jobs.settings import JobsSettings
from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from tests.jobs.helpers import JobStack, Postgres, RedisServer, postgres_cluster

USER_A, USER_B, ADMIN = "sk-user-a", "sk-user-b", "sk-admin"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    cluster: Postgres = request.getfixturevalue("postgres")
    name = f"t{secrets.token_hex(6)}"
    cluster.admin(f"CREATE DATABASE {name}")
    return f"{cluster.url}/{name}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = connect(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


def queue_name() -> str:
    return f"p2-jobs-test-{secrets.token_hex(4)}"


def api_client(
    home: Path, redis_url: str, keyring: Keyring | None = None, **settings: object
) -> TestClient:
    values = {"redis_url": redis_url, "test_models": True, "queue": queue_name(), **settings}
    app = create_app(JobsSettings.build(**values), CoreSettings.build(home=home), keyring=keyring)
    return TestClient(app)


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").text
        time.sleep(0.05)


@pytest.fixture
def api(tmp_path: Path, redis_server: RedisServer) -> Iterator[TestClient]:
    """The job API in-process with user keys A and B and an admin key; no worker runs."""
    keyring = Keyring(users=[USER_A, USER_B], admins=[ADMIN])
    with api_client(tmp_path, redis_server.url, keyring) as client:
        wait_ready(client)
        yield client


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[JobStack]:
    """The job API and workers as processes; each test starts what it needs."""
    env = {
        "P2_HOME": str(tmp_path / "home"),
        "REDIS_URL": redis_server.url,
        "JOBS_TEST_MODELS": "1",
        "JOBS_QUEUE": queue_name(),
        "JOBS_SWEEP_INTERVAL": "0.5",
        "WORKER_HEARTBEAT_INTERVAL": "0.5",
    }
    running = JobStack(tmp_path / "home", env)
    yield running
    running.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
