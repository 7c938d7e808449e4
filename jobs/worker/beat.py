"""The running job's heartbeat, shared by a worker's pool child and its main process.

The child writes a small file when it starts a job and touches it at every
progress report; the main process judges liveness from it: no file (or one left
by a dead child) is idle, a fresh one busy, one older than the stall timeout
stalled -- a wedged child, e.g. stopped or stuck in a call that never returns.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from jobs.fleet import WorkerState
from p2.core.files import atomic_write


@dataclass(frozen=True)
class Liveness:
    state: WorkerState
    job_id: str | None = None
    silent_for: float = 0.0


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a stopped process is alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[-1][:1] != "Z"


class BeatFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, job_id: str) -> None:
        atomic_write(self.path, orjson.dumps({"job": job_id, "pid": os.getpid()}), fsync=False)

    def touch(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def judge(self, stall_timeout: float) -> Liveness:
        try:
            raw = self.path.read_bytes()
            age = time.time() - self.path.stat().st_mtime
            beat = orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError):
            return Liveness(WorkerState.IDLE)
        job_id, pid = str(beat.get("job")), int(beat.get("pid", 0))
        if not process_alive(pid):
            self.clear()  # left by a child that died; its job is re-delivered
            return Liveness(WorkerState.IDLE)
        state = WorkerState.STALLED if age > stall_timeout else WorkerState.BUSY
        return Liveness(state, job_id, age)
