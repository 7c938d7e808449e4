"""The database layer, on SQLite and on a real PostgreSQL: idempotent submits, atomic
state changes, claims that run a job once, pagination."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from jobs import db
from jobs.db import SchemaError, create_schema
from jobs.fleet import Fleet, WorkerState
from jobs.states import Status
from jobs.store import IdempotencyConflict, Job, JobStore


def _submit(store: JobStore, owner: str = "a", task: str = "test", **kw: object) -> Job:
    job, created = store.submit(owner=owner, task=task, model="echo", input={}, config={}, **kw)  # type: ignore[arg-type]
    assert created
    return job


def test_an_idempotency_key_returns_the_first_job_and_refuses_a_different_body(
    engine: Engine,
) -> None:
    store = JobStore(engine)
    first, created = store.submit(
        owner="a",
        task="t",
        model="m",
        input={"x": 1},
        config={},
        idempotency_key="k",
        request_hash="h1",
    )
    again, created_again = store.submit(
        owner="a",
        task="t",
        model="m",
        input={"x": 1},
        config={},
        idempotency_key="k",
        request_hash="h1",
    )
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        store.submit(
            owner="a",
            task="t",
            model="m",
            input={"x": 2},
            config={},
            idempotency_key="k",
            request_hash="h2",
        )
    other, created_other = store.submit(
        owner="b",
        task="t",
        model="m",
        input={"x": 1},
        config={},
        idempotency_key="k",
        request_hash="h1",
    )
    assert created_other and other.id != first.id  # keys are per caller


def test_only_one_of_many_concurrent_finishes_wins(engine: Engine) -> None:
    store = JobStore(engine)
    job = _submit(store)
    assert store.claim(job.id, "r1", alive=lambda _: True, max_attempts=3) is not None
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def finish() -> None:
        barrier.wait()
        wins.append(
            store.move(job.id, Status.SUCCEEDED, expect=Status.RUNNING, held_by="r1", result={})
        )

    threads = [threading.Thread(target=finish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    done = store.get(job.id)
    assert done is not None and done.status is Status.SUCCEEDED and done.finished_at
    assert [(e["source"], e["target"]) for e in store.events(job.id)] == [
        ("queued", "running"),
        ("running", "succeeded"),
    ]


def test_a_duplicate_delivery_is_not_run_while_the_first_runner_lives(engine: Engine) -> None:
    store = JobStore(engine)
    job = _submit(store)
    first = store.claim(job.id, "r1", alive=lambda _: True, max_attempts=3)
    assert first is not None and first.status is Status.RUNNING and first.attempts == 1
    assert store.claim(job.id, "r2", alive=lambda _: True, max_attempts=3) is None
    taken = store.claim(job.id, "r2", alive=lambda _: False, max_attempts=3)
    assert taken is not None and taken.runner == "r2" and taken.attempts == 2
    assert not store.move(job.id, Status.SUCCEEDED, expect=Status.RUNNING, held_by="r1")
    details = [e["detail"] for e in store.events(job.id)]
    assert details[1] == "worker r1 lost"


def test_a_job_that_loses_its_worker_too_often_fails(engine: Engine) -> None:
    store = JobStore(engine)
    job = _submit(store)
    for attempt in range(2):
        assert store.claim(job.id, f"r{attempt}", alive=lambda _: False, max_attempts=2)
    assert store.claim(job.id, "r9", alive=lambda _: False, max_attempts=2) is None
    failed = store.get(job.id)
    assert failed is not None and failed.status is Status.FAILED
    assert failed.error_code == "worker_lost" and failed.attempts == 2


def test_a_finished_or_cancelled_job_is_never_claimed(engine: Engine) -> None:
    store = JobStore(engine)
    job = _submit(store)
    assert store.move(job.id, Status.CANCELLED, expect=Status.QUEUED)
    assert store.claim(job.id, "r1", alive=lambda _: False, max_attempts=3) is None
    assert not store.beat(job.id, "r1", 0.5)


def test_pages_are_newest_first_with_an_after_cursor_and_filters(engine: Engine) -> None:
    store = JobStore(engine)
    jobs = [
        _submit(store, owner="a" if i % 2 else "b", task="t1" if i < 4 else "t2") for i in range(6)
    ]
    first = store.page(owner=None, limit=4)
    assert [j.id for j in first.items] == [j.id for j in reversed(jobs)][:4] and first.has_more
    rest = store.page(owner=None, after=first.items[-1].id, limit=4)
    assert [j.id for j in rest.items] == [jobs[1].id, jobs[0].id] and not rest.has_more
    mine = store.page(owner="a", task="t1", limit=10)
    assert [j.id for j in mine.items] == [jobs[3].id, jobs[1].id]
    assert store.move(jobs[0].id, Status.CANCELLED, expect=Status.QUEUED)
    cancelled = store.page(owner=None, status=Status.CANCELLED, limit=10)
    assert [j.id for j in cancelled.items] == [jobs[0].id]
    assert store.queue_position(jobs[3]) == 2  # jobs 1 and 2 are queued before it


def test_the_sweeper_queries_find_silent_and_undispatched_jobs(engine: Engine) -> None:
    store = JobStore(engine)
    quiet, sent = _submit(store), _submit(store)
    store.mark_dispatched(sent.id)
    later = time.time() + 1
    assert store.undispatched(later) == [quiet.id]
    assert store.dispatched_before(later, limit=5) == [sent.id]
    assert store.claim(quiet.id, "r1", alive=lambda _: True, max_attempts=3)
    assert [j.id for j in store.silent_running(later)] == [quiet.id]
    assert store.silent_running(time.time() - 60) == []
    assert store.counts() == {("test", "queued"): 1, ("test", "running"): 1}


def test_the_schema_is_created_once_and_a_newer_one_is_refused(engine: Engine) -> None:
    create_schema(engine)  # again: nothing changes
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.schema)).scalar() == 1
        conn.execute(sa.update(db.schema).values(version=db.SCHEMA_VERSION + 1))
    with pytest.raises(SchemaError, match="upgrade P2"):
        create_schema(engine)


def test_workers_report_their_state_and_silent_ones_are_forgotten(engine: Engine) -> None:
    fleet = Fleet(engine)
    fleet.report("a", WorkerState.IDLE, job_id=None, device="cpu", pid=1, started_at=1.0)
    first = fleet.all()[0]
    time.sleep(0.01)
    fleet.report("a", WorkerState.IDLE, job_id=None, device="cpu", pid=1, started_at=1.0)
    fleet.report("b", WorkerState.BUSY, job_id="job-x", device="cuda", pid=2, started_at=1.0)
    again, busy = fleet.all()
    assert again.since == first.since and again.seen_at > first.seen_at  # still idle since
    assert (busy.state, busy.job_id) == (WorkerState.BUSY, "job-x")
    assert busy.up(time.time(), 15) and not busy.up(time.time() + 60, 15)
    fleet.report("b", WorkerState.STALLED, job_id="job-x", device="cuda", pid=2, started_at=1.0)
    stalled = fleet.all()[1]
    assert stalled.since > busy.since and not stalled.up(time.time(), 15)
    assert fleet.forget(time.time() + 1) == 2 and fleet.all() == []
