"""The embeddings endpoint's logic: check the request, tokenize, batch, answer."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

from fastapi.responses import Response

from embedding.encoders.base import EncoderError
from embedding.extra_models import ExtraModels, Served
from embedding.metrics import EmbeddingMetrics
from embedding.micro_batcher import BatcherClosed, MicroBatcher
from embedding.protocol import EmbeddingRequest, check_dimensions, input_texts, render
from embedding.runtime import Runtime
from embedding.settings import EmbeddingSettings
from embedding.tokenizer import Tokenized
from p2.core.errors import APIError, BadRequest, ServiceUnavailable
from p2.core.health import Readiness
from p2.core.openai import (
    RETRY_SOON,
    ModelNotFound,
    QueueFull,
    busy,
    model_card,
    model_list,
    not_ready,
    unknown_model,
)

# Tokenizing more characters than this moves off the event loop.
_INLINE_TOKENIZE_CHARS = 4096


class EmbeddingService:
    """The loaded model behind ``/v1/embeddings`` and ``/v1/models``, ready once ``attach``-ed;
    with ``cache_root``, fine-tuned models published there are served too, on demand."""

    def __init__(
        self,
        settings: EmbeddingSettings,
        readiness: Readiness,
        metrics: EmbeddingMetrics,
        cache_root: Path | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness
        self.metrics = metrics
        self.created = int(time.time())
        self._base: Served | None = None
        self.extra = ExtraModels(settings, cache_root, self._serve) if cache_root else None
        metrics.watch_queue(lambda: sum(s.batcher.depth for s in self._all()))

    def _serve(self, runtime: Runtime) -> Served:
        batcher = MicroBatcher(
            [partial(runtime.embed_tokens, worker=i) for i in range(len(runtime.encoders))],
            max_batch=self.settings.max_batch,
            wait_seconds=self.settings.batch_wait_ms / 1000,
            max_queue=self.settings.max_queue,
            metrics=self.metrics,
        )
        self.metrics.info.labels(runtime.model.id, runtime.backend).set(1)
        return Served(runtime, batcher)

    def _all(self) -> list[Served]:
        extra = self.extra.served if self.extra is not None else []
        return [*([self._base] if self._base is not None else []), *extra]

    def attach(self, runtime: Runtime) -> None:
        """Called once the model is loaded; the service is ready after this."""
        self._base = self._serve(runtime)
        self.readiness.set_ready()

    @property
    def base(self) -> Served:
        if self._base is None or not self.readiness.ready:
            raise not_ready(self.readiness.detail)
        return self._base

    async def aclose(self) -> None:
        for served in self._all():
            await served.batcher.aclose()

    def _names(self) -> list[str]:
        base = list(self._base.runtime.model.names) if self._base else []
        return base + (self.extra.available() if self.extra is not None else [])

    def list_models(self) -> dict[str, object]:
        return model_list(model_card(name, self.created) for name in self._names())

    def describe(self, name: str) -> dict[str, object]:
        base = self.base.runtime.model.names
        if name not in base and (self.extra is None or not self.extra.exists(name)):
            raise unknown_model(name, self._names())
        return model_card(name, self.created)

    async def _served(self, name: str | None) -> Served:
        base = self.base
        if name is None or name in base.runtime.model.names:
            return base
        served = await self._extra(name)
        if served is None:
            raise unknown_model(name, self._names())
        return served

    async def _extra(self, name: str) -> Served | None:
        if self.extra is None:
            return None
        try:
            return await self.extra.get(name)
        except (ModelNotFound, EncoderError, OSError, ValueError, RuntimeError) as exc:
            raise APIError(f"The model '{name}' could not be loaded: {exc}") from None

    async def embed(self, body: EmbeddingRequest) -> Response:
        served = await self._served(body.model)
        runtime = served.runtime
        check_dimensions(body.dimensions, runtime.encoder.dimension)
        texts = input_texts(body.input, self.settings.max_inputs, self.settings.max_input_chars)
        tokens = await self._tokenize(runtime, texts)
        try:
            vectors = await served.batcher.embed(tokens)
        except QueueFull:
            self.metrics.rejected.inc()
            raise busy("embedding queue") from None
        except BatcherClosed as exc:
            raise ServiceUnavailable(str(exc), headers=RETRY_SOON) from None
        except EncoderError as exc:
            raise APIError(f"The model failed to compute the embeddings: {exc}") from None
        prompt_tokens = sum(len(t) for t in tokens)
        self.metrics.inputs.inc(len(tokens))
        self.metrics.tokens.inc(prompt_tokens)
        model = body.model or runtime.model.id
        content = render(
            vectors, model=model, encoding_format=body.encoding_format, prompt_tokens=prompt_tokens
        )
        return Response(content, media_type="application/json")

    async def _tokenize(self, runtime: Runtime, texts: list[str]) -> list[Tokenized]:
        if sum(len(text) for text in texts) <= _INLINE_TOKENIZE_CHARS:
            tokens = runtime.tokenizer.encode(texts)
        else:
            tokens = await asyncio.to_thread(runtime.tokenizer.encode, texts)
        cut = [i for i, t in enumerate(tokens) if t.truncated]
        if cut and not self.settings.truncate:
            where = f"'input[{cut[0]}]'" if len(texts) > 1 else "'input'"
            raise BadRequest(
                f"{where} is longer than this model's limit of {runtime.tokenizer.max_tokens} "
                "tokens; shorten it or split it into several inputs.",
                param="input",
                code="context_length_exceeded",
            )
        self.metrics.truncated.inc(len(cut))
        return tokens
