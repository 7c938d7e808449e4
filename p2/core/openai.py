"""What every P2 service answers the same way, in OpenAI's shapes.

The model list (``GET /v1/models``) and the three refusals every model server
shares: the model is still loading, the queue is full, no such model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from p2.core.errors import NotFound, ServiceUnavailable

RETRY_SOON = {"Retry-After": "1"}


class QueueFull(Exception):
    """A bounded queue is at its limit: the request is refused now rather than left waiting."""


class ModelNotFound(FileNotFoundError):
    """A configured model file or directory does not exist or is not a model."""


def model_card(name: str, created: int, owned_by: str = "p2", **extra: Any) -> dict[str, Any]:
    """One entry of ``/v1/models``."""
    return {"id": name, "object": "model", "created": created, "owned_by": owned_by, **extra}


def model_list(cards: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": list(cards)}


def unknown_model(name: str, known: Iterable[str]) -> NotFound:
    return NotFound(
        f"The model '{name}' does not exist. Known models: {', '.join(known)}.",
        param="model",
        code="model_not_found",
    )


def not_ready(detail: str) -> ServiceUnavailable:
    """503 while the model loads (or failed to): clients and the gateway retry elsewhere."""
    return ServiceUnavailable(
        f"The model is not ready: {detail}.", code="model_loading", headers=RETRY_SOON
    )


def busy(queue: str = "request queue") -> ServiceUnavailable:
    """503 for a full queue, so the gateway fails over instead of piling requests up."""
    return ServiceUnavailable(
        f"The server is busy: its {queue} is full. Retry shortly.",
        code="queue_full",
        headers=RETRY_SOON,
    )
