"""The retry policy: transient failures are retried with backoff and counted; 4xx fail fast."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag.errors import StoreRejected, StoreUnavailable
from rag.retry import RetryPolicy, backoff
from rag.store.base import Record
from rag.store.retrying import RetryingStore
from rag.store.server import classify


def _policy(retries: int = 3) -> tuple[RetryPolicy, Counter]:
    counter = Counter("r", "r", ["target", "operation"], registry=CollectorRegistry())
    return RetryPolicy("qdrant", retries, 0.001, 0.01, counter), counter


class Flaky:
    """A store whose ``retrieve`` fails with ``errors`` in turn, then answers."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def retrieve(self, name: str, ids: Sequence[str]) -> list[Record]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [Record("1", {"ok": True})]


def test_transient_errors_are_retried_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    policy, counter = _policy()
    flaky = Flaky([StoreUnavailable("reset"), StoreUnavailable("timeout")])
    store = RetryingStore(flaky, policy)  # type: ignore[arg-type]
    assert store.retrieve("c", ["1"])[0].payload == {"ok": True}
    assert flaky.calls == 3
    assert counter.labels("qdrant", "retrieve")._value.get() == 2
    assert sum("retrying in" in r.message for r in caplog.records) == 2


def test_client_errors_fail_fast() -> None:
    policy, counter = _policy()
    flaky = Flaky([StoreRejected("bad vector")])
    with pytest.raises(StoreRejected):
        RetryingStore(flaky, policy).retrieve("c", ["1"])  # type: ignore[arg-type]
    assert flaky.calls == 1
    assert counter.labels("qdrant", "retrieve")._value.get() == 0


def test_gives_up_after_max_retries() -> None:
    policy, _ = _policy(retries=2)
    flaky = Flaky([StoreUnavailable(str(i)) for i in range(5)])
    with pytest.raises(StoreUnavailable):
        RetryingStore(flaky, policy).retrieve("c", ["1"])  # type: ignore[arg-type]
    assert flaky.calls == 3


def test_backoff_grows_exponentially_within_bounds() -> None:
    wait = backoff(2.0, 10.0)

    class State:
        def __init__(self, n: int) -> None:
            self.attempt_number = n

    waits = [wait(State(n)) for n in (1, 2, 3, 4, 5)]  # type: ignore[arg-type]
    assert 2.0 <= waits[0] <= 4.0 and 4.0 <= waits[1] <= 6.0
    assert all(w <= 10.0 for w in waits) and waits[-1] == 10.0


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UnexpectedResponse(503, "Unavailable", b"", httpx.Headers()), StoreUnavailable),
        (UnexpectedResponse(500, "Error", b"", httpx.Headers()), StoreUnavailable),
        (UnexpectedResponse(429, "Too many", b"", httpx.Headers()), StoreUnavailable),
        (UnexpectedResponse(400, "Bad", b"bad vector", httpx.Headers()), StoreRejected),
        (UnexpectedResponse(422, "Bad", b"", httpx.Headers()), StoreRejected),
        (ResponseHandlingException(httpx.ConnectError("refused")), StoreUnavailable),
        (httpx.ReadTimeout("slow"), StoreUnavailable),
    ],
)
def test_qdrant_client_errors_are_classified(error: Exception, kind: type) -> None:
    assert type(classify(error, "c")) is kind
