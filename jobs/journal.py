"""A job's log and checkpoints in the database: what it reports besides its state changes.

The worker running a job writes here (messages, per-step metrics, each
resumable checkpoint); the API reads it back (a fine-tuning job's events and
checkpoints). The rows are the truth: a re-run after a lost worker resumes from
the newest checkpoint recorded here, whatever else lies on disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from jobs import db, ids

Level = Literal["info", "warn", "error"]
Kind = Literal["message", "metrics"]


@dataclass(frozen=True)
class LogEntry:
    id: int
    job_id: str
    at: float
    level: str
    kind: str
    message: str
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: RowMapping) -> LogEntry:
        return cls(**dict(row))


@dataclass(frozen=True)
class Checkpoint:
    id: str
    job_id: str
    created_at: float
    step: int
    epoch: int
    metrics: dict[str, Any]
    path: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Checkpoint:
        return cls(**dict(row))


class JobJournal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log(
        self,
        job_id: str,
        message: str,
        *,
        level: Level = "info",
        kind: Kind = "message",
        data: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Append one entry (in ``conn``'s transaction when given)."""
        row = {
            "job_id": job_id,
            "at": time.time(),
            "level": level,
            "kind": kind,
            "message": message,
            "data": data,
        }
        if conn is not None:
            conn.execute(db.log.insert().values(**row))
            return
        with self.engine.begin() as own:
            own.execute(db.log.insert().values(**row))

    def entries(self, job_id: str) -> list[LogEntry]:
        """Oldest first."""
        query = sa.select(db.log).where(db.log.c.job_id == job_id).order_by(db.log.c.id)
        with self.engine.connect() as conn:
            return [LogEntry.from_row(r) for r in conn.execute(query).mappings()]

    def forget_metrics_after(self, job_id: str, step: int) -> int:
        """Drop metrics of steps after ``step``: a resumed run reports them again."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.log.c.id, db.log.c.data).where(
                    db.log.c.job_id == job_id, db.log.c.kind == "metrics"
                )
            ).all()
        stale = [i for i, data in rows if isinstance(data, dict) and data.get("step", 0) > step]
        if stale:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(db.log).where(db.log.c.id.in_(stale)))
        return len(stale)

    def checkpoint(
        self, job_id: str, *, step: int, epoch: int, metrics: dict[str, Any], path: str
    ) -> Checkpoint:
        """Record a checkpoint whose folder is complete on disk (replacing one of that step)."""
        values = {
            "created_at": time.time(),
            "epoch": epoch,
            "metrics": metrics,
            "path": path,
        }
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(
                        db.checkpoints.insert().values(
                            id=ids.new_id("ftckpt"), job_id=job_id, step=step, **values
                        )
                    )
            except IntegrityError:  # a re-run wrote this step again
                conn.execute(
                    sa.update(db.checkpoints)
                    .where(db.checkpoints.c.job_id == job_id, db.checkpoints.c.step == step)
                    .values(**values)
                )
        found = [c for c in self.checkpoints(job_id) if c.step == step]
        return found[0]

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """Oldest (lowest step) first."""
        query = (
            sa.select(db.checkpoints)
            .where(db.checkpoints.c.job_id == job_id)
            .order_by(db.checkpoints.c.step)
        )
        with self.engine.connect() as conn:
            return [Checkpoint.from_row(r) for r in conn.execute(query).mappings()]

    def pruned(self, checkpoint_id: str) -> None:
        """The checkpoint's folder was removed; its metrics stay."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(db.checkpoints)
                .where(db.checkpoints.c.id == checkpoint_id)
                .values(path=None)
            )


@dataclass(frozen=True)
class BoundJournal:
    """One job's journal, as a model running that job sees it."""

    journal: JobJournal
    job_id: str

    def log(
        self,
        message: str,
        *,
        level: Level = "info",
        kind: Kind = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.journal.log(self.job_id, message, level=level, kind=kind, data=data)

    def entries(self) -> list[LogEntry]:
        return self.journal.entries(self.job_id)

    def forget_metrics_after(self, step: int) -> int:
        return self.journal.forget_metrics_after(self.job_id, step)

    def checkpoint(
        self, *, step: int, epoch: int, metrics: dict[str, Any], path: str
    ) -> Checkpoint:
        return self.journal.checkpoint(
            self.job_id, step=step, epoch=epoch, metrics=metrics, path=path
        )

    def checkpoints(self) -> list[Checkpoint]:
        return self.journal.checkpoints(self.job_id)

    def pruned(self, checkpoint_id: str) -> None:
        self.journal.pruned(checkpoint_id)
