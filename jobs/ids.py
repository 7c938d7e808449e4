"""Ids of jobs and files: a prefix, the creation time in milliseconds, then randomness.

Ids sort in creation order, which is what the list endpoints' ``after`` cursor
and a job's queue position rely on.
"""

from __future__ import annotations

import secrets
import threading
import time

_lock = threading.Lock()
_last = [0, 0]  # the last id's millisecond and its sequence number within it


def new_id(prefix: str) -> str:
    """Ids made by one process sort in the order they were made, even within a millisecond
    (a sequence number follows the time); randomness keeps other processes' ids apart."""
    with _lock:
        ms = max(int(time.time() * 1000), _last[0])
        _last[1] = _last[1] + 1 if ms == _last[0] else 0
        _last[0] = ms
        seq = _last[1] & 0xFFFF
    return f"{prefix}-{ms:012x}{seq:04x}{secrets.token_hex(5)}"


def job_id() -> str:
    return new_id("job")


def file_id() -> str:
    return new_id("file")
