"""One stack per ``P2_HOME``: an exclusive lock held by the running supervisor."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from p2.supervisor.state import run_dir


class StackLock:
    def __init__(self, home: Path) -> None:
        self.path = run_dir(home) / "supervisor.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def held_elsewhere(self) -> bool:
        """True while another process runs the stack."""
        if self.acquire():
            self.release()
            return False
        return True
