"""The database that owns jobs, files, job events and workers (SQLAlchemy 2 Core).

SQLite under ``P2_HOME`` by default (WAL, so the API and the workers read while
one writes), Postgres when ``DATABASE_URL`` says so. Tables are created at
start-up, idempotently, and a schema version row says which layout a database
has, so a newer P2 can refuse (or later migrate) an older one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

SCHEMA_VERSION = 1

metadata = sa.MetaData()

schema = sa.Table(
    "p2_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("error_message", sa.Text),
    sa.Column("error_code", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("runner", sa.String(256)),  # host:pid:start of the process running it
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("dispatched_at", sa.Float),  # None: not (or no longer) handed to the broker
    sa.Column("idempotency_key", sa.String(256)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("result", sa.JSON),
    sa.Column("result_file", sa.String(64)),  # a result too large for the row
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_idempotency"),
)
sa.Index("ix_jobs_status", jobs.c.status, jobs.c.id)
sa.Index("ix_jobs_owner", jobs.c.owner, jobs.c.id)
sa.Index("ix_jobs_finished", jobs.c.finished_at)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("job_id", sa.String(64)),  # set for a job's result files
)
sa.Index("ix_files_owner", files.c.owner, files.c.id)
sa.Index("ix_files_job", files.c.job_id)

events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
)
sa.Index("ix_events_job", events.c.job_id, events.c.id)

# What a job reports besides its state changes (a fine-tuning job's messages and metrics):
# GET /v1/fine_tuning/jobs/{id}/events shows these with the state changes.
log = sa.Table(
    "job_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),  # info | warn | error
    sa.Column("kind", sa.String(16), nullable=False),  # message | metrics
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.JSON),
)
sa.Index("ix_log_job", log.c.job_id, log.c.id)

# A job's resumable checkpoints: a re-run after a lost worker starts from the newest one.
checkpoints = sa.Table(
    "job_checkpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("path", sa.Text),  # its folder; None once pruned (the metrics stay)
    sa.UniqueConstraint("job_id", "step", name="uq_checkpoints_step"),
)
sa.Index("ix_checkpoints_job", checkpoints.c.job_id, checkpoints.c.step)

# Fine-tuned models an admin deleted (the job that made one stays, as OpenAI keeps it).
deleted_models = sa.Table(
    "deleted_models",
    metadata,
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # idle | busy | stalled | stopped
    sa.Column("job_id", sa.String(64)),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("since", sa.Float, nullable=False),  # in this state since
)


class SchemaError(RuntimeError):
    """The database holds a schema this P2 does not know (made by a newer version)."""


def engine_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 (SQLAlchemy's default is psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes, no fsync per commit
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


def connect(url: str) -> Engine:
    """An engine for ``url``; SQLite's folder is created and WAL is switched on."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 15})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create what is missing and record the schema version; refuse a newer schema."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except (OperationalError, IntegrityError):  # another process created it at the same time
        metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        version = conn.execute(sa.select(schema.c.version).where(schema.c.id == 1)).scalar()
        if version is None:
            try:
                with conn.begin_nested():
                    conn.execute(schema.insert().values(id=1, version=SCHEMA_VERSION))
            except IntegrityError:  # written by a process starting beside this one
                pass
        elif version > SCHEMA_VERSION:
            raise SchemaError(
                f"the jobs database has schema version {version}; this P2 knows up to "
                f"{SCHEMA_VERSION}: upgrade P2 or point DATABASE_URL elsewhere"
            )
