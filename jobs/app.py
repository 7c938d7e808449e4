"""App factory of the job API: the database, the broker, the sweeper, the routes.

``/health`` turns 200 once the database answers and has its tables (a
Postgres that is still starting is waited for); the broker may come and go:
jobs submitted while it is down wait in the database and are sent by the
sweeper when it is back.
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from jobs.db import SchemaError, connect, create_schema
from jobs.file_routes import build_file_router
from jobs.files import FileStore
from jobs.fleet import FRESH, Fleet
from jobs.ft_models import FineTunedModels
from jobs.ft_routes import MODEL_RULES, build_fine_tuning_router
from jobs.ft_service import FineTuningService
from jobs.ft_validator import Validator
from jobs.journal import JobJournal
from jobs.metrics import JobsMetrics, Snapshot
from jobs.notify import Announcer, Waiters
from jobs.queue import SEND_ERRORS, Dispatcher, celery_app
from jobs.registry import discover
from jobs.routes import build_router
from jobs.service import JobService
from jobs.settings import JobsSettings
from jobs.store import JobStore
from jobs.sweeper import Sweeper
from p2.core.app import service_app
from p2.core.health import Readiness
from p2.core.keys import PROBES, AccessPolicy, Keyring, KeySettings
from p2.core.settings import CoreSettings

log = logging.getLogger("p2.jobs")

DB_RETRY = 1.0


def create_app(
    settings: JobsSettings, core: CoreSettings | None = None, *, keyring: Keyring | None = None
) -> FastAPI:
    core = core or CoreSettings()
    registry = discover(test_models=settings.test_models)
    readiness = Readiness("jobs database")
    metrics = JobsMetrics()
    engine = connect(settings.database(core.home))
    store = JobStore(engine)
    files = FileStore(engine, settings.artifacts(core.home))
    fleet = Fleet(engine)
    broker = settings.broker_url
    dispatcher = Dispatcher(
        celery_app(broker, queue=settings.queue, visibility_timeout=settings.visibility_timeout),
        settings.queue,
    )
    waiters = Waiters(broker)
    announcer = Announcer(broker)
    sweeper = Sweeper(settings, store, fleet, dispatcher, metrics)
    service = JobService(
        settings,
        store=store,
        files=files,
        dispatcher=dispatcher,
        waiters=waiters,
        announcer=announcer,
        registry=registry,
        metrics=metrics,
        readiness=readiness,
    )
    journal = JobJournal(engine)
    validator = Validator(store, files, journal, dispatcher, announcer)
    fine_tuning = FineTuningService(service, journal, validator, FineTunedModels(store, engine))
    stopping = threading.Event()

    def snapshot() -> Snapshot:
        snap = Snapshot()
        try:
            snap.counts = store.counts()
            snap.workers = fleet.all()
        except SQLAlchemyError as exc:
            log.warning("metrics without the database: %s", exc)
        try:
            snap.queue_depth = dispatcher.depth()
        except (*SEND_ERRORS, RedisError) as exc:
            log.debug("metrics without the broker: %s", exc)
        return snap

    metrics.watch(snapshot, fresh=FRESH)

    def load() -> None:
        while not stopping.is_set():
            try:
                create_schema(engine)
                break
            except SchemaError as exc:
                readiness.set_failed(str(exc))
                return
            except SQLAlchemyError as exc:
                readiness.set_loading(f"waiting for the jobs database: {exc}")
                stopping.wait(DB_RETRY)
        files.root.mkdir(parents=True, exist_ok=True)
        sweeper.start()
        validator.start()
        readiness.set_ready()
        log.info("job API ready: models %s", ", ".join(registry.models()) or "none")

    async def close() -> None:
        stopping.set()
        sweeper.stop()
        validator.stop()
        waiters.stop()
        announcer.close()
        dispatcher.close()
        engine.dispose()

    app = service_app(
        "P2 jobs",
        routers=[
            build_router(service),
            build_file_router(files, readiness, settings.max_upload_bytes),
            build_fine_tuning_router(fine_tuning),
        ],
        registry=metrics.registry,
        requests=metrics.requests,
        readiness=readiness,
        load=load,
        close=close,
        keyring=keyring if keyring is not None else KeySettings().keyring(),
        policy=AccessPolicy((*PROBES, *MODEL_RULES)),
    )
    app.state.service = service
    return app
