"""Jobs in the database: submit (with idempotency keys), read, list, and every state change.

``move`` is the one way a job changes state: it checks ``jobs.states`` and
updates the row only if it is still in the expected state (and, for a running
job, still held by the expected runner), in one statement, recording the event
in the same transaction. Whoever loses a race simply gets ``False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from jobs import db, ids
from jobs.states import TERMINAL, Status, check


class IdempotencyConflict(Exception):
    """The caller reused an ``Idempotency-Key`` for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    task: str
    model: str
    status: Status
    input: dict[str, Any]
    config: dict[str, Any]
    progress: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    error_message: str | None
    error_code: str | None
    attempts: int
    runner: str | None
    heartbeat_at: float | None
    dispatched_at: float | None
    idempotency_key: str | None
    request_hash: str | None
    result: dict[str, Any] | None
    result_file: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Job:
        values = dict(row)
        values["status"] = Status(values["status"])
        return cls(**values)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class Page:
    items: list[Job]
    has_more: bool


Extra = Callable[[Connection], None]


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(
        self,
        *,
        owner: str,
        task: str,
        model: str,
        input: dict[str, Any],
        config: dict[str, Any],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        status: Status = Status.QUEUED,
    ) -> tuple[Job, bool]:
        """The new job (``True``), or the one an earlier request with the same key made;
        ``status`` VALIDATING holds it back from the queue until its files are checked."""
        if idempotency_key is not None:
            earlier = self._by_key(owner, idempotency_key, request_hash)
            if earlier is not None:
                return earlier, False
        values = {
            "id": ids.job_id(),
            "owner": owner,
            "task": task,
            "model": model,
            "status": status.value,
            "input": input,
            "config": config,
            "progress": 0.0,
            "created_at": time.time(),
            "attempts": 0,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(db.jobs.insert().values(**values))
        except IntegrityError:
            if idempotency_key is None:
                raise
            earlier = self._by_key(owner, idempotency_key, request_hash)
            if earlier is None:
                raise
            return earlier, False
        job = self.get(str(values["id"]))
        assert job is not None
        return job, True

    def _by_key(self, owner: str, key: str, request_hash: str | None) -> Job | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(db.jobs).where(
                        db.jobs.c.owner == owner, db.jobs.c.idempotency_key == key
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        job = Job.from_row(row)
        if job.request_hash != request_hash:
            raise IdempotencyConflict(key)
        return job

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)).mappings().first()
        return Job.from_row(row) if row is not None else None

    def page(
        self,
        *,
        owner: str | None,
        status: Status | None = None,
        task: str | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> Page:
        """Newest first; ``after`` is the last id of the previous page."""
        query = sa.select(db.jobs).order_by(db.jobs.c.id.desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(db.jobs.c.owner == owner)
        if status is not None:
            query = query.where(db.jobs.c.status == status.value)
        if task is not None:
            query = query.where(db.jobs.c.task == task)
        if after is not None:
            query = query.where(db.jobs.c.id < after)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return Page([Job.from_row(r) for r in rows[:limit]], len(rows) > limit)

    def queue_position(self, job: Job) -> int:
        """Queued jobs submitted before this one (0: it is next)."""
        query = (
            sa.select(sa.func.count())
            .select_from(db.jobs)
            .where(db.jobs.c.status == Status.QUEUED.value, db.jobs.c.id < job.id)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def move(
        self,
        job_id: str,
        target: Status,
        *,
        expect: Status,
        held_by: str | None = None,
        detail: str | None = None,
        also: Extra | None = None,
        **values: Any,
    ) -> bool:
        """``expect`` -> ``target`` if the job is still ``expect`` (and held by ``held_by``,
        when given); ``values`` are set with it and ``also`` runs in the same transaction."""
        check(expect, target)
        now = time.time()
        statement = sa.update(db.jobs).where(
            db.jobs.c.id == job_id, db.jobs.c.status == expect.value
        )
        if held_by is not None:
            statement = statement.where(db.jobs.c.runner == held_by)
        values["status"] = target.value
        if target in TERMINAL:
            values.setdefault("finished_at", now)
        with self.engine.begin() as conn:
            if conn.execute(statement.values(**values)).rowcount != 1:
                return False
            conn.execute(
                db.events.insert().values(
                    job_id=job_id, at=now, source=expect.value, target=target.value, detail=detail
                )
            )
            if also is not None:
                also(conn)
        return True

    def claim(
        self, job_id: str, runner: str, *, alive: Callable[[Job], bool], max_attempts: int
    ) -> Job | None:
        """Start the job for ``runner``; None when it is not to be run (finished, cancelled,
        or running elsewhere: a duplicate delivery). A job whose runner is gone is taken over."""
        job = self.get(job_id)
        if job is None or job.terminal:
            return None
        if job.status is Status.RUNNING:
            if alive(job):
                return None
            self.requeue_lost(job, max_attempts, dispatched=True)
            job = self.get(job_id)
            if job is None or job.status is not Status.QUEUED:
                return None
        now = time.time()
        started = self.move(
            job_id,
            Status.RUNNING,
            expect=Status.QUEUED,
            detail=f"started by {runner}",
            runner=runner,
            attempts=db.jobs.c.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
        )
        return self.get(job_id) if started else None

    def requeue_lost(self, job: Job, max_attempts: int, *, dispatched: bool) -> bool:
        """A running job whose worker is gone goes back to the queue, or fails after
        ``max_attempts`` starts; ``dispatched`` False has the sweeper send it again."""
        if job.attempts >= max_attempts:
            return self.move(
                job.id,
                Status.FAILED,
                expect=Status.RUNNING,
                held_by=job.runner,
                detail=f"worker {job.runner} lost",
                error_code="worker_lost",
                error_message=f"The worker running this job was lost {job.attempts} times.",
            )
        return self.move(
            job.id,
            Status.QUEUED,
            expect=Status.RUNNING,
            held_by=job.runner,
            detail=f"worker {job.runner} lost",
            dispatched_at=job.dispatched_at if dispatched else None,
        )

    def beat(self, job_id: str, runner: str, progress: float | None = None) -> bool:
        """Record the runner's heartbeat (and progress); False once the job is not its own."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if progress is not None:
            values["progress"] = progress
        statement = (
            sa.update(db.jobs)
            .where(
                db.jobs.c.id == job_id,
                db.jobs.c.status == Status.RUNNING.value,
                db.jobs.c.runner == runner,
            )
            .values(**values)
        )
        with self.engine.begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)

    def mark_dispatched(self, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(db.jobs).where(db.jobs.c.id == job_id).values(dispatched_at=time.time())
            )

    def undispatched(self, created_before: float, limit: int = 100) -> list[str]:
        """Queued jobs no broker holds: the broker was down at submit, or their worker lost."""
        return self._ids(
            sa.and_(
                db.jobs.c.status == Status.QUEUED.value,
                db.jobs.c.dispatched_at.is_(None),
                db.jobs.c.created_at < created_before,
            ),
            limit,
        )

    def dispatched_before(self, before: float, limit: int) -> list[str]:
        """Queued jobs handed to the broker before ``before``, oldest first."""
        return self._ids(
            sa.and_(db.jobs.c.status == Status.QUEUED.value, db.jobs.c.dispatched_at < before),
            limit,
        )

    def validating(self, created_before: float, limit: int = 100) -> list[str]:
        """Jobs still waiting for their files to be checked (an API restart orphaned them)."""
        return self._ids(
            sa.and_(
                db.jobs.c.status == Status.VALIDATING.value,
                db.jobs.c.created_at < created_before,
            ),
            limit,
        )

    def silent_running(self, heartbeat_before: float) -> list[Job]:
        query = sa.select(db.jobs).where(
            db.jobs.c.status == Status.RUNNING.value, db.jobs.c.heartbeat_at < heartbeat_before
        )
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def _ids(self, condition: sa.ColumnElement[bool], limit: int) -> list[str]:
        query = sa.select(db.jobs.c.id).where(condition).order_by(db.jobs.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [str(i) for i in conn.execute(query).scalars()]

    def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (task, status)."""
        query = sa.select(db.jobs.c.task, db.jobs.c.status, sa.func.count()).group_by(
            db.jobs.c.task, db.jobs.c.status
        )
        with self.engine.connect() as conn:
            return {(str(t), str(s)): int(n) for t, s, n in conn.execute(query)}

    def finished_between(self, since: float, until: float) -> list[Job]:
        query = (
            sa.select(db.jobs)
            .where(db.jobs.c.finished_at > since, db.jobs.c.finished_at <= until)
            .order_by(db.jobs.c.finished_at)
        )
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def events(self, job_id: str) -> Sequence[RowMapping]:
        query = sa.select(db.events).where(db.events.c.job_id == job_id).order_by(db.events.c.id)
        with self.engine.connect() as conn:
            return conn.execute(query).mappings().all()
