"""Readiness state and the ``/health`` contract every P2 service honours.

``GET /health`` answers 503 with an OpenAI-style error body while the service
is starting (model loading) or broken, and 200 ``{"status": "ok"}`` once it is
ready. The gateway's active checks and the ``p2 up`` supervisor rely on
exactly this.
"""

from __future__ import annotations

import enum
import threading

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from p2.core.errors import error_response


class State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class Readiness:
    """Thread-safe readiness flag with a human-readable reason."""

    def __init__(self, what: str = "model") -> None:
        self._lock = threading.Lock()
        self._state = State.LOADING
        self._detail = f"Loading {what}"

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    @property
    def detail(self) -> str:
        with self._lock:
            return self._detail

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def set_ready(self) -> None:
        with self._lock:
            self._state, self._detail = State.READY, "ok"

    def set_failed(self, detail: str) -> None:
        with self._lock:
            self._state, self._detail = State.FAILED, detail

    def set_loading(self, detail: str) -> None:
        with self._lock:
            self._state, self._detail = State.LOADING, detail


def health_response(readiness: Readiness) -> JSONResponse:
    state = readiness.state
    if state is State.READY:
        return JSONResponse({"status": "ok"})
    return error_response(
        503,
        readiness.detail,
        error_type="unavailable_error",
        code=state.value,
        headers={"Retry-After": "1"},
    )


def health_router(readiness: Readiness) -> APIRouter:
    router = APIRouter()

    @router.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return health_response(readiness)

    return router
