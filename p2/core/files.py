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


def atomic_write(
    target: Path, data: bytes | str, *, fsync: bool = True, mode: int | None = None
) -> None:
    """Write ``data`` to ``target`` atomically (text as UTF-8); ``mode`` is set before the
    file appears (e.g. 0o600 for a secret, which is then never readable by others)."""
    raw = data.encode() if isinstance(data, str) else data
    with replacing(target) as partial:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode or 0o666)
        if mode is not None:
            os.fchmod(fd, mode)  # the umask does not narrow what was asked for
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
