"""Files: uploads and job results on disk under the artifact directory, rows in the database.

Content lives at ``<artifact dir>/<file id>``, written to a temporary name and
renamed into place, with its sha256 recorded; the row is what makes a file
exist, so a crash between the two leaves at most an unreferenced file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from jobs import db, ids
from p2.core.files import atomic_write

# OpenAI's upload purposes; "job_output" marks the files a job produced.
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
OUTPUT_PURPOSE = "job_output"


def file_refs(value: Any, path: str = "input") -> Iterator[tuple[str, str]]:
    """``(param, file_id)`` for every string under a key ending ``file_id`` (or a list under
    ``file_ids``), at any depth of the input."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if key.endswith("file_id") and isinstance(item, str):
                yield where, item
            elif key.endswith("file_ids") and isinstance(item, list):
                for i, entry in enumerate(item):
                    if isinstance(entry, str):
                        yield f"{where}[{i}]", entry
            else:
                yield from file_refs(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from file_refs(item, f"{path}[{i}]")


class TooLarge(Exception):
    """An upload passed the size limit."""


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    media_type: str
    created_at: float
    job_id: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> FileRecord:
        return cls(**dict(row))

    def openai(self) -> dict[str, Any]:
        """OpenAI's file object (plus ``sha256``), which the official SDK reads unchanged."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "sha256": self.sha256,
        }


class Incoming:
    """An upload being written: counted and hashed chunk by chunk, refused past ``limit``."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"the file is larger than the limit of {self.limit} bytes")
        self._hash.update(chunk)
        self._handle.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class FileStore:
    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.root = root

    def path(self, file_id: str) -> Path:
        return self.root / file_id

    def incoming(self, limit: int) -> Incoming:
        return Incoming(self.root / ".incoming" / secrets.token_hex(8), limit)

    def commit(
        self, upload: Incoming, *, owner: str, filename: str, purpose: str, media_type: str
    ) -> FileRecord:
        """Move a finished upload into place and record it."""
        upload.close()
        record = FileRecord(
            ids.file_id(),
            owner,
            filename,
            purpose,
            upload.size,
            upload.sha256,
            media_type,
            time.time(),
            None,
        )
        os.replace(upload.path, self.path(record.id))
        self.insert(record)
        return record

    def write(
        self,
        data: bytes,
        *,
        owner: str,
        filename: str,
        media_type: str,
        job_id: str | None = None,
        purpose: str = OUTPUT_PURPOSE,
    ) -> FileRecord:
        """Write content atomically; the caller records it (``insert``), possibly in the
        transaction that finishes its job."""
        record = FileRecord(
            ids.file_id(),
            owner,
            filename,
            purpose,
            len(data),
            hashlib.sha256(data).hexdigest(),
            media_type,
            time.time(),
            job_id,
        )
        atomic_write(self.path(record.id), data)
        return record

    def insert(self, *records: FileRecord, conn: Connection | None = None) -> None:
        rows = [record.__dict__ for record in records]
        if not rows:
            return
        if conn is not None:
            conn.execute(db.files.insert(), rows)
            return
        with self.engine.begin() as own:
            own.execute(db.files.insert(), rows)

    def get(self, file_id: str) -> FileRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(db.files).where(db.files.c.id == file_id)).mappings().first()
            )
        return FileRecord.from_row(row) if row is not None else None

    def of_job(self, job_id: str) -> list[FileRecord]:
        query = sa.select(db.files).where(db.files.c.job_id == job_id).order_by(db.files.c.id)
        with self.engine.connect() as conn:
            return [FileRecord.from_row(r) for r in conn.execute(query).mappings()]

    def page(
        self,
        *,
        owner: str | None,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> tuple[list[FileRecord], bool]:
        order = db.files.c.id.desc() if newest_first else db.files.c.id.asc()
        query = sa.select(db.files).order_by(order).limit(limit + 1)
        if owner is not None:
            query = query.where(db.files.c.owner == owner)
        if purpose is not None:
            query = query.where(db.files.c.purpose == purpose)
        if after is not None:
            query = query.where(db.files.c.id < after if newest_first else db.files.c.id > after)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [FileRecord.from_row(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, file_id: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(db.files).where(db.files.c.id == file_id)).rowcount == 1
        if gone:
            self.path(file_id).unlink(missing_ok=True)
        return bool(gone)

    def discard(self, records: list[FileRecord]) -> None:
        """Remove content written for a job that did not finish (no row was made)."""
        for record in records:
            self.path(record.id).unlink(missing_ok=True)
