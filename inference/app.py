"""App factory of the inference server: loads the model in the background, serves at once."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import FastAPI

from inference import prompting
from inference.admission import Admission
from inference.engines.base import Engine, EngineError
from inference.metrics import InferenceMetrics
from inference.model import resolve_model
from inference.routes import build_router
from inference.service import InferenceService, ServedModel
from inference.settings import EngineKind, InferenceSettings
from p2.core.app import service_app
from p2.core.health import Readiness
from p2.core.openai import ModelNotFound
from p2.core.settings import CoreSettings

log = logging.getLogger("p2.inference")


def make_engine(
    settings: InferenceSettings, model_path: Path, core: CoreSettings, readiness: Readiness
) -> Engine:
    if settings.engine is EngineKind.LLAMA_SERVER:
        from inference.engines.llama_server import LlamaServerEngine

        def lost(reason: str) -> None:
            log.error("%s: this server is no longer healthy", reason)
            readiness.set_failed(reason)

        return LlamaServerEngine(model_path, settings, core, on_exit=lost)
    from inference.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(model_path, settings)


def served_names(settings: InferenceSettings, model_path: Path | None) -> tuple[str, ...]:
    names = [settings.role.value]
    if settings.model_alias:
        names.append(settings.model_alias)
    if model_path is not None:
        names.append(model_path.name.removesuffix(".gguf"))
    return tuple(dict.fromkeys(names))


def create_app(settings: InferenceSettings, core: CoreSettings | None = None) -> FastAPI:
    core = core or CoreSettings()
    readiness = Readiness("model")
    admission = Admission(settings.slots, settings.max_queue)
    metrics = InferenceMetrics(admission, settings.role.value)
    service = InferenceService(
        model=ServedModel(served_names(settings, settings.model_path), "", int(time.time())),
        readiness=readiness,
        admission=admission,
        metrics=metrics,
        max_tokens_default=settings.max_tokens_default,
    )

    def load() -> None:
        started = time.perf_counter()
        try:
            path = resolve_model(settings.model_path, core.models_dir)
            engine = make_engine(settings, path, core, readiness)
            engine.load()
            formatter = prompting.select(
                settings.chat_format, engine.chat_template, engine.bos_token, engine.eos_token
            )
        except (EngineError, ModelNotFound, prompting.UnknownChatFormat, OSError) as exc:
            log.error("cannot serve the model: %s", exc)
            readiness.set_failed(f"model failed to load: {exc}")
            return
        model = ServedModel(served_names(settings, path), str(path), int(time.time()))
        service.attach(engine, formatter, model)
        log.info(
            "%s model %s ready in %.2fs (engine %s, n_ctx %d)",
            settings.role.value,
            path.name,
            time.perf_counter() - started,
            settings.engine.value,
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
    )
    app.state.service = service
    return app
