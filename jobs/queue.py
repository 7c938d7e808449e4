"""Celery on Redis, used only as a transport: a message carries nothing but a job id.

The settings are the ones measured to survive faults (docs/jobs.md): late acks
and re-delivery when a worker child dies, one message per worker at a time, a
visibility timeout above the longest job. Cancelling a running job revokes it
with ``terminate``, which kills the worker child that runs it.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

log = logging.getLogger("p2.jobs.queue")

RUN_JOB = "p2.jobs.run"
SEND_ERRORS = (OperationalError, KombuError, RedisError, OSError)


def celery_app(broker_url: str, *, queue: str, visibility_timeout: float) -> Celery:
    app = Celery("p2-jobs", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,  # a message is done when its job is, not when it is received
        task_reject_on_worker_lost=True,  # a killed child's job is delivered again at once
        worker_prefetch_multiplier=1,  # one message per worker process: no job waits behind
        task_ignore_result=True,  # results live in P2's database
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


class Dispatcher:
    """Hands job ids to the broker and revokes them."""

    def __init__(self, app: Celery, queue: str) -> None:
        self.app = app
        self.queue = queue

    def send(self, job_id: str) -> bool:
        """Publish the job; False when the broker cannot be reached (the sweeper retries)."""
        try:
            self.app.send_task(RUN_JOB, args=[job_id], task_id=job_id, queue=self.queue)
        except SEND_ERRORS as exc:
            log.warning("could not hand job %s to the broker: %s", job_id, exc)
            return False
        return True

    def revoke(self, job_id: str, *, terminate: bool) -> bool:
        """Tell every worker to drop the job; ``terminate`` kills the child running it."""
        options: dict[str, Any] = {"terminate": terminate}
        if terminate:
            options["signal"] = "SIGKILL"  # a stuck CUDA call ignores SIGTERM; memory must go
        try:
            self.app.control.revoke(job_id, **options)
        except SEND_ERRORS as exc:
            log.warning("could not revoke job %s: %s", job_id, exc)
            return False
        return True

    def depth(self) -> int:
        """Messages waiting in the broker's queue."""
        with self.app.connection_for_write() as conn:
            client = cast(Any, conn.default_channel).client
            return int(client.llen(self.queue))

    def close(self) -> None:
        self.app.close()
