"""What each kind of backend failure does, as one table the forwarding code reads.

For every failure kind the table says whether the backend is *ejected* (out
of rotation until a ``/health`` check succeeds), whether the failure counts
toward its *cooldown* (``allowed_fails`` in a row, LiteLLM's semantics), and
whether the request then moves on to the next backend or goes back to the
client. Kinds are the labels of ``p2_gateway_backend_errors_total`` and
``p2_gateway_failovers_total``; ``docs/gateway.md`` shows the table.

Two kinds need the request's history, not just the one answer:

* a 500 may be the backend's fault or the request's (out-of-range token ids
  crash some servers). Its cooldown is *deferred*: if a later backend answers
  the same request, the first one failed and is charged; if a second backend
  answers 500 too, the request is the cause: its 500 goes back to the client
  and no backend is charged.
* a 4xx (``context_length_exceeded`` and content-policy refusals included) is
  the client's own mistake: relayed at once, never retried, charged to no
  backend (but ``context_window_fallbacks`` and ``content_policy_fallbacks``
  may send it to another group). 401 and 403 are not: the gateway sends its
  own key, so they say the deployment's key is wrong; they move on.

``ERROR_CLASS`` names each kind as LiteLLM's exception class, the key of
``retry_policy`` and ``allowed_fails_policy``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.upstream import UpstreamError


class Kind(enum.StrEnum):
    """A failure kind; its value is the metric label."""

    # Before the response head (the failover loop).
    CONNECT = "connect"  # refused or unreachable
    RESET = "reset"  # closed or reset before the response was complete
    FIRST_BYTE_TIMEOUT = "first_byte_timeout"  # no head in time and /health silent too
    READ_TIMEOUT = "read_timeout"  # alive but no answer within the request timeout
    ABORTED = "ejected"  # a failed health check dropped the exchange
    PROTOCOL = "protocol"  # not valid HTTP
    HTTP_429 = "http_429"
    HTTP_503 = "http_503"  # loading, or its queue is full
    HTTP_500 = "http_500"
    HTTP_5XX = "http_5xx"  # any other 5xx, and 408
    HTTP_AUTH = "http_auth"  # 401 or 403: the deployment's key is refused
    HTTP_4XX = "http_4xx"
    CONTEXT_LENGTH = "context_length_exceeded"  # any error answer that says so
    CONTENT_POLICY = "content_policy"  # a 400 that says the content was refused
    # After the stream started (the relay continues it on the next backend).
    MIDSTREAM_RESET = "midstream_reset"
    MIDSTREAM_READ_TIMEOUT = "midstream_read_timeout"  # silent for LLM_STREAM_IDLE_TIMEOUT
    MIDSTREAM_ABORTED = "midstream_ejected"
    MIDSTREAM_PROTOCOL = "midstream_protocol"
    MIDSTREAM_STREAM_ERROR = "midstream_stream_error"  # an error event in the stream


class Cooldown(enum.Enum):
    NO = "no"
    YES = "yes"  # counts toward allowed_fails now
    DEFERRED = "deferred"  # counts only once another backend answers the same request


class Then(enum.Enum):
    NEXT = "next backend"
    CLIENT = "back to the client"


class Final(enum.Enum):
    """What the client gets when this was the last failure and no backend is left."""

    ANSWER = "the backend's answer"
    UNAVAILABLE = "503 no_backend_available"
    TIMEOUT = "504 upstream_timeout"


@dataclass(frozen=True)
class Policy:
    eject: bool
    cooldown: Cooldown
    then: Then
    final: Final
    again: Then | None = None  # what a second failure of this kind in one request does


_EJECT_NEXT_503 = Policy(True, Cooldown.NO, Then.NEXT, Final.UNAVAILABLE)
_EJECT_NEXT_504 = Policy(True, Cooldown.NO, Then.NEXT, Final.TIMEOUT)
_COOL_NEXT_ANSWER = Policy(False, Cooldown.YES, Then.NEXT, Final.ANSWER)
_CLIENTS_OWN = Policy(False, Cooldown.NO, Then.CLIENT, Final.ANSWER)

POLICY: Mapping[Kind, Policy] = {
    Kind.CONNECT: _EJECT_NEXT_503,
    Kind.RESET: _EJECT_NEXT_503,
    Kind.FIRST_BYTE_TIMEOUT: _EJECT_NEXT_504,
    Kind.READ_TIMEOUT: Policy(False, Cooldown.YES, Then.NEXT, Final.TIMEOUT),
    Kind.ABORTED: _EJECT_NEXT_504,
    Kind.PROTOCOL: _EJECT_NEXT_503,
    Kind.HTTP_429: _COOL_NEXT_ANSWER,
    Kind.HTTP_503: _COOL_NEXT_ANSWER,
    Kind.HTTP_5XX: _COOL_NEXT_ANSWER,
    Kind.HTTP_500: Policy(False, Cooldown.DEFERRED, Then.NEXT, Final.ANSWER, again=Then.CLIENT),
    Kind.HTTP_AUTH: Policy(False, Cooldown.YES, Then.NEXT, Final.UNAVAILABLE),
    Kind.HTTP_4XX: _CLIENTS_OWN,
    Kind.CONTEXT_LENGTH: _CLIENTS_OWN,
    Kind.CONTENT_POLICY: _CLIENTS_OWN,
    Kind.MIDSTREAM_RESET: _EJECT_NEXT_503,
    Kind.MIDSTREAM_READ_TIMEOUT: _EJECT_NEXT_504,
    Kind.MIDSTREAM_ABORTED: _EJECT_NEXT_504,
    Kind.MIDSTREAM_PROTOCOL: _EJECT_NEXT_503,
    Kind.MIDSTREAM_STREAM_ERROR: Policy(False, Cooldown.YES, Then.NEXT, Final.ANSWER),
}

_TIMEOUT = "TimeoutError"
_SERVER = "InternalServerError"
ERROR_CLASS: Mapping[Kind, str] = {
    Kind.CONNECT: _SERVER,
    Kind.RESET: _SERVER,
    Kind.FIRST_BYTE_TIMEOUT: _TIMEOUT,
    Kind.READ_TIMEOUT: _TIMEOUT,
    Kind.ABORTED: _TIMEOUT,
    Kind.PROTOCOL: _SERVER,
    Kind.HTTP_429: "RateLimitError",
    Kind.HTTP_503: "ServiceUnavailableError",
    Kind.HTTP_500: _SERVER,
    Kind.HTTP_5XX: _SERVER,
    Kind.HTTP_AUTH: "AuthenticationError",
    Kind.HTTP_4XX: "BadRequestError",
    Kind.CONTEXT_LENGTH: "BadRequestError",
    Kind.CONTENT_POLICY: "ContentPolicyViolationError",
    Kind.MIDSTREAM_RESET: _SERVER,
    Kind.MIDSTREAM_READ_TIMEOUT: _TIMEOUT,
    Kind.MIDSTREAM_ABORTED: _TIMEOUT,
    Kind.MIDSTREAM_PROTOCOL: _SERVER,
    Kind.MIDSTREAM_STREAM_ERROR: _SERVER,
}

# Error bodies that say the prompt is too long: OpenAI's code, llama-server's type and text.
_CONTEXT_MARKERS = (
    b"context_length_exceeded",
    b"exceed_context_size",
    b"exceeds the available context size",
)
# ... and that the content was refused: OpenAI's and Azure's codes.
_POLICY_MARKERS = (b"content_policy_violation", b"content_filter")


def http_kind(status: int, body: bytes) -> Kind:
    """The kind of an error answer (status >= 400)."""
    if any(marker in body for marker in _CONTEXT_MARKERS):
        return Kind.CONTEXT_LENGTH
    if status == 400 and any(marker in body for marker in _POLICY_MARKERS):
        return Kind.CONTENT_POLICY
    if status in (401, 403):
        return Kind.HTTP_AUTH
    if status == 500:
        return Kind.HTTP_500
    if status == 503:
        return Kind.HTTP_503
    if status == 429:
        return Kind.HTTP_429
    if status >= 500 or status == 408:
        return Kind.HTTP_5XX
    return Kind.HTTP_4XX


def upstream_kind(exc: UpstreamError, *, midstream: bool = False) -> Kind:
    """The kind of a failed exchange (``exc.reason`` names it)."""
    return Kind(f"midstream_{exc.reason}" if midstream else exc.reason)
