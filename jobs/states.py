"""Job states and the transitions between them: the whole lifecycle policy, as data.

Every state change goes through ``jobs.store.JobStore.move``, which checks this
table and applies the change in the database only if the job is still in the
state the caller saw, so a duplicate delivery can never finish a job twice.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    VALIDATING = "validating_files"  # a fine-tuning job's files are checked before it queues
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    # FAILED: its input files are not what the task needs; no worker was ever involved.
    Status.VALIDATING: frozenset({Status.QUEUED, Status.FAILED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    # QUEUED again: the worker running it was lost and the job goes back to the queue.
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.QUEUED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(ValueError):
    """A state change the table does not allow (a bug in the caller, not a race)."""


def check(current: Status, target: Status) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a job cannot go from {current} to {target}")
