"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The new content goes to a temporary file beside the target (same filesystem),
is flushed to disk, and then renamed over the target in one step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to build the new file in; it replaces ``target``
    when the block succeeds and is removed when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def atomic_write(target: Path, data: bytes | str, *, fsync: bool = True) -> None:
    """Write ``data`` to ``target`` atomically (text as UTF-8)."""
    raw = data.encode() if isinstance(data, str) else data
    with replacing(target) as partial, partial.open("wb") as handle:
        handle.write(raw)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
