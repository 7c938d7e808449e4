"""Retry strategies: exponential backoff with jitter, for transient errors only.

Small tenacity pieces composed into one policy. Each retry is logged and
counted in ``p2_rag_retries_total{target, operation}``; anything that is not a
:class:`~rag.errors.TransientError` (a 4xx, a bug) fails at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from rag.errors import TransientError

log = logging.getLogger("p2.rag.retry")


def only_transient() -> retry_base:
    """Retry connection errors, timeouts, 5xx and 429; never a 4xx."""
    return retry_if_exception_type(TransientError)


def attempts(max_retries: int) -> stop_base:
    """``max_retries`` retries after the first attempt."""
    return stop_after_attempt(max_retries + 1)


def backoff(min_wait: float, max_wait: float) -> wait_base:
    """Exponential from ``min_wait`` (doubling), capped at ``max_wait``, plus jitter."""
    return wait_exponential_jitter(multiplier=min_wait, max=max_wait, jitter=min_wait)


def log_and_count(
    target: str, operation: str, counter: Counter
) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` hook: one warning line and one counter increment per retry."""

    def hook(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        counter.labels(target, operation).inc()
        log.warning(
            "%s %s failed (attempt %d): %s; retrying in %.2fs",
            target,
            operation,
            state.attempt_number,
            error,
            wait,
        )

    return hook


@dataclass(frozen=True)
class RetryPolicy:
    """How one dependency is retried; builds tenacity controllers per call."""

    target: str
    max_retries: int
    min_wait: float
    max_wait: float
    counter: Counter

    def sync(self, operation: str) -> Retrying:
        return Retrying(
            retry=only_transient(),
            stop=attempts(self.max_retries),
            wait=backoff(self.min_wait, self.max_wait),
            before_sleep=log_and_count(self.target, operation, self.counter),
            reraise=True,
        )

    def asynchronous(self, operation: str) -> AsyncRetrying:
        return AsyncRetrying(
            retry=only_transient(),
            stop=attempts(self.max_retries),
            wait=backoff(self.min_wait, self.max_wait),
            before_sleep=log_and_count(self.target, operation, self.counter),
            reraise=True,
        )
