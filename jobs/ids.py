"""Ids of jobs and files: a prefix, the creation time in milliseconds, then randomness.

Ids sort in creation order, which is what the list endpoints' ``after`` cursor
and a job's queue position rely on.
"""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}-{int(time.time() * 1000):012x}{secrets.token_hex(7)}"


def job_id() -> str:
    return new_id("job")


def file_id() -> str:
    return new_id("file")
