"""The FastAPI app every model service shares: errors, health, metrics, keys, model loading.

A model service starts answering at once: ``/health`` says 503 while its
model loads in a background thread, then 200. What differs per service (its
routes, its metrics, how it loads) is passed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter

from p2.core.auth import RequireKey
from p2.core.errors import install_error_handlers
from p2.core.health import Readiness, health_router
from p2.core.keys import AccessPolicy, Keyring
from p2.core.metrics import CountRequests, metrics_router

log = logging.getLogger("p2.app")


def load_in_background(name: str, load: Callable[[], None]) -> threading.Thread:
    """Run ``load`` in a daemon thread so the server answers (503) while it works."""
    thread = threading.Thread(target=load, name=name, daemon=True)
    thread.start()
    return thread


def service_app(
    title: str,
    *,
    routers: Sequence[APIRouter],
    registry: CollectorRegistry,
    requests: Counter,
    readiness: Readiness | None = None,
    load: Callable[[], None] | None = None,
    close: Callable[[], Awaitable[None]] | None = None,
    keyring: Keyring | None = None,
    policy: AccessPolicy | None = None,
) -> FastAPI:
    """A P2 service app.

    ``readiness`` adds the standard ``GET /health``; ``load`` runs in the
    background at start-up (it sets ``readiness``); ``close`` runs at shutdown.
    With a ``keyring`` that holds keys, every route but ``/health`` and
    ``/metrics`` needs one, as ``policy`` says.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load is not None:
            load_in_background(f"{title}-loader", load)
        try:
            yield
        finally:
            if close is not None:
                await close()

    app = FastAPI(title=title, lifespan=lifespan)
    install_error_handlers(app)
    if readiness is not None:
        app.include_router(health_router(readiness))
    app.include_router(metrics_router(registry))
    for router in routers:
        app.include_router(router)
    # Added last, so it runs first: refused requests (401/403) are counted too.
    if keyring is not None and not keyring.open:
        app.add_middleware(RequireKey, keyring=keyring, policy=policy or AccessPolicy())
    app.add_middleware(CountRequests, counter=requests, templates=lambda: app.openapi()["paths"])
    return app
