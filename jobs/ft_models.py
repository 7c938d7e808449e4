"""Fine-tuned models: what succeeded fine-tuning jobs made, until an admin deletes one.

A model exists while its job has succeeded and it is not in ``deleted_models``;
deleting it records that and removes its artifact (the GGUF adapter, or the
embedding model's folder), so the servers stop finding it. The job itself stays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from jobs import db
from jobs.finetune.bases import TASK
from jobs.finetune.names import parse
from jobs.states import Status
from jobs.store import Job, JobStore

MAX_MODELS = 10_000


class FineTunedModels:
    def __init__(self, store: JobStore, engine: Engine) -> None:
        self.store = store
        self.engine = engine

    def _deleted(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(m) for m in conn.execute(sa.select(db.deleted_models.c.model)).scalars()}

    def all(self, owner: str | None) -> list[tuple[str, Job]]:
        """(name, job) of every live model ``owner`` has (None: everyone's), newest first."""
        page = self.store.page(owner=owner, status=Status.SUCCEEDED, task=TASK, limit=MAX_MODELS)
        deleted = self._deleted()
        found = []
        for job in page.items:
            name = (job.result or {}).get("fine_tuned_model")
            if isinstance(name, str) and name not in deleted:
                found.append((name, job))
        return found

    def find(self, name: str) -> Job | None:
        """The succeeded job that made the live model ``name``."""
        parts = parse(name)
        if parts is None:
            return None
        job = self.store.get(parts.id)
        if (
            job is None
            or job.task != TASK
            or job.status is not Status.SUCCEEDED
            or (job.result or {}).get("fine_tuned_model") != name
        ):
            return None
        return None if name in self._deleted() else job

    def delete(self, name: str, job: Job) -> bool:
        """Record the deletion and remove the artifact; False if it was already deleted."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    db.deleted_models.insert().values(
                        model=name, job_id=job.id, deleted_at=time.time()
                    )
                )
        except IntegrityError:
            return False
        path = (job.result or {}).get("path")
        if isinstance(path, str):
            remove(Path(path))
        return True


def remove(path: Path) -> None:
    """Remove a file, or a folder at once (renamed aside first, so no reader sees half)."""
    if path.is_dir():
        aside = path.with_name(f".deleted-{path.name}-{os.getpid()}")
        os.replace(path, aside)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        for each in (path, path.with_suffix(".json")):  # an adapter and its card
            with contextlib.suppress(FileNotFoundError):
                each.unlink()
