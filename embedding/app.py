"""App factory of the embedding service: loads the model in the background, serves at once.

With keys configured (``P2_API_KEYS``, ``P2_ADMIN_KEYS``, ``P2_SERVICE_KEY``)
every route but ``/health`` and ``/metrics`` needs one, of user scope at least.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI

from embedding.encoders.base import EncoderError
from embedding.metrics import EmbeddingMetrics
from embedding.routes import build_router
from embedding.runtime import Runtime, load_runtime
from embedding.service import EmbeddingService
from embedding.settings import EmbeddingSettings
from p2.core.app import service_app
from p2.core.health import Readiness
from p2.core.keys import PROBES, Access, AccessPolicy, Keyring, KeySettings
from p2.core.limits import BodyLimit
from p2.core.openai import ModelNotFound
from p2.core.settings import CoreSettings

log = logging.getLogger("p2.embedding")
POLICY = AccessPolicy(PROBES, default=Access.USER)


def create_app(
    settings: EmbeddingSettings,
    core: CoreSettings | None = None,
    *,
    runtime: Runtime | None = None,
    keyring: Keyring | None = None,
) -> FastAPI:
    """The service; with ``runtime`` it serves that loaded model instead of loading one,
    with ``keyring`` those keys instead of ``P2_API_KEYS`` and its kin."""
    core = core or CoreSettings()
    keyring = keyring if keyring is not None else KeySettings().keyring()
    readiness = Readiness("embedding model")
    metrics = EmbeddingMetrics()
    cache_root = settings.cache_dir or core.models_dir / "embedding"
    service = EmbeddingService(settings, readiness, metrics, cache_root)

    def load() -> None:
        started = time.perf_counter()
        try:
            loaded = load_runtime(settings, cache_root)
        except (ModelNotFound, EncoderError, OSError, ValueError, RuntimeError) as exc:
            log.error("cannot serve the embedding model: %s", exc)
            readiness.set_failed(f"embedding model failed to load: {exc}")
            return
        service.attach(loaded)
        log.info(
            "embedding model %s ready in %.2fs (backend %s, %d dimensions, %d tokens max)",
            loaded.model.id,
            time.perf_counter() - started,
            loaded.backend,
            loaded.encoder.dimension,
            loaded.tokenizer.max_tokens,
        )

    if runtime is not None:
        service.attach(runtime)
    app = service_app(
        "P2 embedding",
        routers=[build_router(service)],
        registry=metrics.registry,
        requests=metrics.requests,
        readiness=readiness,
        load=load if runtime is None else None,
        close=service.aclose,
        keyring=keyring,
        policy=POLICY,
    )
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, setting="EMBEDDING_MAX_BODY_BYTES"
    )
    app.state.service = service
    return app
