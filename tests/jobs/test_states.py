"""The lifecycle table: final states are final, a lost job may be queued again."""

from __future__ import annotations

import pytest

from jobs.states import TERMINAL, TRANSITIONS, IllegalTransition, Status, check


def test_final_states_lead_nowhere() -> None:
    assert {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED} == TERMINAL
    for done in TERMINAL:
        for target in Status:
            with pytest.raises(IllegalTransition):
                check(done, target)


def test_a_running_job_can_go_back_to_the_queue_but_a_queued_one_cannot_succeed() -> None:
    check(Status.RUNNING, Status.QUEUED)
    with pytest.raises(IllegalTransition, match="queued to succeeded"):
        check(Status.QUEUED, Status.SUCCEEDED)
    assert set(TRANSITIONS) == set(Status)
