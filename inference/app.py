"""App factory of the inference server: loads the model in the background, serves at once.

With keys configured (``P2_API_KEYS``, ``P2_ADMIN_KEYS``, ``P2_SERVICE_KEY``) every
route but ``/health`` and ``/metrics`` needs one, of user scope at least.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import FastAPI

from inference import prompting
from inference.adapters import AdapterDirectory
from inference.admission import Admission
from inference.engines.base import Engine, EngineError
from inference.errors import name_unknown_fields
from inference.metrics import InferenceMetrics
from inference.model import resolve_model
from inference.planning import Planner
from inference.routes import build_router
from inference.service import InferenceService, ServedModel
from inference.settings import EngineKind, InferenceSettings
from inference.vocab import VocabError
from p2.core.app import service_app
from p2.core.health import Readiness
from p2.core.keys import PROBES, Access, AccessPolicy, Keyring, KeySettings
from p2.core.limits import BodyLimit
from p2.core.openai import ModelNotFound
from p2.core.settings import CoreSettings

log = logging.getLogger("p2.inference")
POLICY = AccessPolicy(PROBES, default=Access.USER)


def make_engine(
    settings: InferenceSettings, model_path: Path, core: CoreSettings, readiness: Readiness
) -> Engine:
    if settings.engine is EngineKind.LLAMA_SERVER:
        from inference.engines.llama_server import LlamaServerEngine

        def lost(reason: str) -> None:
            log.error("%s: this server is no longer healthy", reason)
            readiness.set_failed(reason)

        names = served_names(settings, model_path)
        adapters = AdapterDirectory(adapter_dir(settings, core), names).present()
        return LlamaServerEngine(model_path, settings, core, adapters, on_exit=lost)
    from inference.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(model_path, settings)


def adapter_dir(settings: InferenceSettings, core: CoreSettings) -> Path:
    return (settings.adapter_dir or core.home / "adapters").expanduser()


def served_names(settings: InferenceSettings, model_path: Path | None) -> tuple[str, ...]:
    names = [settings.role.value]
    if settings.model_alias:
        names.append(settings.model_alias)
    if model_path is not None:
        names.append(model_path.name.removesuffix(".gguf"))
    return tuple(dict.fromkeys(names))


def create_app(
    settings: InferenceSettings, core: CoreSettings | None = None, keyring: Keyring | None = None
) -> FastAPI:
    """The service; with ``keyring`` those keys instead of ``P2_API_KEYS`` and its kin."""
    core = core or CoreSettings()
    keyring = keyring if keyring is not None else KeySettings().keyring()
    readiness = Readiness("model")
    admission = Admission(settings.slots, settings.max_queue)
    metrics = InferenceMetrics(admission, settings.role.value)
    service = InferenceService(
        model=ServedModel(served_names(settings, settings.model_path), "", int(time.time())),
        settings=settings,
        readiness=readiness,
        admission=admission,
        metrics=metrics,
        adapter_root=adapter_dir(settings, core),
    )

    def load() -> None:
        started = time.perf_counter()
        try:
            path = resolve_model(settings.model_path, core.models_dir, role=settings.role)
            engine = make_engine(settings, path, core, readiness)
            engine.load()
            vocab = engine.vocab
            formatter = prompting.select(
                settings.chat_format,
                vocab.metadata("tokenizer.chat_template"),
                vocab.text(vocab.bos_id),
                vocab.text(vocab.eos_id),
            )
        except (
            EngineError,
            VocabError,
            ModelNotFound,
            prompting.UnknownChatFormat,
            OSError,
        ) as exc:
            log.error("cannot serve the model: %s", exc)
            readiness.set_failed(f"model failed to load: {exc}")
            return
        model = ServedModel(served_names(settings, path), str(path), int(time.time()))
        service.attach(engine, Planner(engine, formatter, settings), model)
        log.info(
            "%s model %s ready in %.2fs (engine %s, %d slots of %d tokens)",
            settings.role.value,
            path.name,
            time.perf_counter() - started,
            settings.engine.value,
            settings.slots,
            engine.n_ctx,
        )

    app = service_app(
        f"P2 inference ({settings.role.value})",
        routers=[build_router(service)],
        registry=metrics.registry,
        requests=metrics.requests,
        readiness=readiness,
        load=load,
        close=service.aclose,
        keyring=keyring,
        policy=POLICY,
    )
    name_unknown_fields(app)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, setting=settings.env_name("max_body_bytes")
    )
    app.state.service = service
    return app
