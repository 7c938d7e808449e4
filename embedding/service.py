"""The embeddings endpoint's logic: check the request, tokenize, batch, answer."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from fastapi.responses import Response

from embedding.encoders.base import EncoderError
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
    """The loaded model behind ``/v1/embeddings`` and ``/v1/models``; ready once ``attach``-ed."""

    def __init__(
        self, settings: EmbeddingSettings, readiness: Readiness, metrics: EmbeddingMetrics
    ) -> None:
        self.settings = settings
        self.readiness = readiness
        self.metrics = metrics
        self.created = int(time.time())
        self._runtime: Runtime | None = None
        self._batcher: MicroBatcher | None = None
        metrics.watch_queue(lambda: self._batcher.depth if self._batcher else 0)

    def attach(self, runtime: Runtime) -> None:
        """Called once the model is loaded; the service is ready after this."""
        self._batcher = MicroBatcher(
            [partial(runtime.embed_tokens, worker=i) for i in range(len(runtime.encoders))],
            max_batch=self.settings.max_batch,
            wait_seconds=self.settings.batch_wait_ms / 1000,
            max_queue=self.settings.max_queue,
            metrics=self.metrics,
        )
        self._runtime = runtime
        self.metrics.info.labels(runtime.model.id, runtime.backend).set(1)
        self.readiness.set_ready()

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None or self._batcher is None or not self.readiness.ready:
            raise not_ready(self.readiness.detail)
        return self._runtime

    async def aclose(self) -> None:
        if self._batcher is not None:
            await self._batcher.aclose()

    def list_models(self) -> dict[str, object]:
        names = self._runtime.model.names if self._runtime else ()
        return model_list(self.describe(name) for name in names)

    def describe(self, name: str) -> dict[str, object]:
        runtime = self.runtime
        if name not in runtime.model.names:
            raise unknown_model(name, runtime.model.names)
        return model_card(name, self.created)

    async def embed(self, body: EmbeddingRequest) -> Response:
        runtime = self.runtime
        if body.model is not None and body.model not in runtime.model.names:
            raise unknown_model(body.model, runtime.model.names)
        check_dimensions(body.dimensions, runtime.encoder.dimension)
        texts = input_texts(body.input, self.settings.max_inputs, self.settings.max_input_chars)
        tokens = await self._tokenize(runtime, texts)
        try:
            assert self._batcher is not None  # set with the runtime
            vectors = await self._batcher.embed(tokens)
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
