"""Child processes of a fine-tuning job, watched from the worker's pool child.

Each child gets the parent-death signal (SIGKILL): when the pool child dies,
killed by a cancel (``revoke(terminate=True)``) or by anything else, its
training process dies with it and the GPU memory is freed. While a child runs,
the job's heartbeat is kept (``beat`` about every second); when the heartbeat
says the job is no longer ours (cancelled, re-queued), the child is killed and
the exception goes on up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from jobs.registry import ModelError
from p2.core.process import die_with_parent

log = logging.getLogger("p2.jobs.finetune")

BEAT_EVERY = 1.0
Beat = Callable[[], None]
OnEvent = Callable[[dict[str, Any]], None]


def _start(argv: Sequence[str], stdout: int | None) -> subprocess.Popen[bytes]:
    parent = os.getpid()
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=None,  # the worker's log
        start_new_session=True,
        preexec_fn=lambda: die_with_parent(signal.SIGKILL, parent),
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_watched(argv: Sequence[str], *, beat: Beat, what: str, code: str, timeout: float) -> None:
    """Run ``argv`` to the end, beating meanwhile; ``ModelError(code)`` if it fails."""
    proc = _start(argv, sys.stderr.fileno())
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            beat()
            if time.monotonic() > deadline:
                raise ModelError(f"{what} did not finish within {timeout:.0f}s", code=code)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(BEAT_EVERY)
    finally:
        if proc.poll() is None:
            kill(proc)
    if proc.returncode != 0:
        raise ModelError(
            f"{what} failed (exit code {proc.returncode}); see the worker's log", code=code
        )


def _reader(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_trainer(spec_path: Path, *, beat: Beat, on_event: OnEvent) -> dict[str, Any]:
    """``python -m jobs.finetune.train`` on ``spec_path``; each event to ``on_event``;
    the ``done`` event, or ``ModelError`` with the trainer's error."""
    proc = _start([sys.executable, "-m", "jobs.finetune.train", str(spec_path)], subprocess.PIPE)
    assert proc.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
        while True:
            beat()
            try:
                line = lines.get(timeout=BEAT_EVERY)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                log.warning("trainer wrote a line that is no event: %r", line[:200])
                continue
            if event.get("event") == "done":
                done = event
            elif event.get("event") == "error":
                error = event
            else:
                on_event(event)
        proc.wait()
    finally:
        if proc.poll() is None:
            kill(proc)
    if done is not None and proc.returncode == 0:
        return done
    if error is not None:
        raise ModelError(str(error.get("message")), code=str(error.get("code", "training_failed")))
    raise ModelError(
        f"the training process exited with code {proc.returncode} without a result "
        "(killed, or out of memory?); see the worker's log",
        code="training_failed",
    )
