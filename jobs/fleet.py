"""The workers table: each worker reports its state every few seconds; the API reads it.

A worker counts as up while its last report is fresh and it is not stalled;
the job API's metrics and its sweeper (which re-sends queued jobs while a
worker idles) read this table, since workers may run on other machines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from jobs import db

FRESH = 15.0  # a worker that has not reported for this long is down (it reports every 5 s)
FORGET = 24 * 3600.0  # a worker silent this long is dropped from the table (and the metrics)


class WorkerState(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    STALLED = "stalled"
    STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerRow:
    name: str
    state: WorkerState
    job_id: str | None
    device: str
    pid: int
    started_at: float
    seen_at: float
    since: float

    @classmethod
    def from_row(cls, row: RowMapping) -> WorkerRow:
        values = dict(row)
        values["state"] = WorkerState(values["state"])
        return cls(**values)

    def up(self, now: float, fresh: float) -> bool:
        """Reported within ``fresh`` seconds and neither stalled nor stopped."""
        return now - self.seen_at <= fresh and self.state in (WorkerState.IDLE, WorkerState.BUSY)


class Fleet:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def report(
        self,
        name: str,
        state: WorkerState,
        *,
        job_id: str | None,
        device: str,
        pid: int,
        started_at: float,
    ) -> None:
        now = time.time()
        values = {
            "state": state.value,
            "job_id": job_id,
            "device": device,
            "pid": pid,
            "started_at": started_at,
            "seen_at": now,
        }
        changed = sa.case((db.workers.c.state == state.value, db.workers.c.since), else_=now)
        update = sa.update(db.workers).where(db.workers.c.name == name)
        with self.engine.begin() as conn:
            if conn.execute(update.values(since=changed, **values)).rowcount == 1:
                return
            try:
                with conn.begin_nested():
                    conn.execute(db.workers.insert().values(name=name, since=now, **values))
            except IntegrityError:  # reported by a second process of the same name meanwhile
                conn.execute(update.values(since=changed, **values))

    def all(self) -> list[WorkerRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.workers).order_by(db.workers.c.name)).mappings()
            return [WorkerRow.from_row(r) for r in rows]

    def forget(self, silent_since: float) -> int:
        """Drop workers that have not reported since ``silent_since`` (removed or renamed)."""
        with self.engine.begin() as conn:
            statement = sa.delete(db.workers).where(db.workers.c.seen_at < silent_since)
            return int(conn.execute(statement).rowcount)
