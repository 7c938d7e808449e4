"""The inference service: validate, queue, generate, and shape OpenAI responses."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from inference.admission import Admission
from inference.engines.base import Engine, EngineError, Finish, GenerationParams, Usage
from inference.metrics import InferenceMetrics
from inference.prompting import Formatter
from inference.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from inference.responses import ClientGone, ClosingStreamingResponse, unless_disconnected
from p2.core.errors import APIError, BadRequest
from p2.core.health import Readiness
from p2.core.openai import QueueFull, busy, model_card, model_list, not_ready, unknown_model
from p2.core.sse import DONE, sse, sse_error

log = logging.getLogger("p2.inference")

Kind = Literal["chat", "completion"]


@dataclass
class ServedModel:
    """The names this server answers to; the first is the one it reports."""

    names: tuple[str, ...]
    path: str
    created: int

    @property
    def id(self) -> str:
        return self.names[0]


class InferenceService:
    """One role's model behind the OpenAI completion endpoints; ready once ``attach``-ed."""

    def __init__(
        self,
        *,
        model: ServedModel,
        readiness: Readiness,
        admission: Admission,
        metrics: InferenceMetrics,
        max_tokens_default: int,
    ) -> None:
        self.model = model
        self.readiness = readiness
        self.admission = admission
        self.metrics = metrics
        self.max_tokens_default = max_tokens_default
        self._engine: Engine | None = None
        self.formatter: Formatter | None = None

    def attach(self, engine: Engine, formatter: Formatter, model: ServedModel) -> None:
        """Called once the model is loaded; the service is ready after this."""
        self._engine, self.formatter, self.model = engine, formatter, model
        self.readiness.set_ready()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise not_ready("it is not loaded")
        return self._engine

    async def aclose(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.aclose()

    # -- public endpoints -------------------------------------------------

    def list_models(self) -> dict[str, Any]:
        return model_list(model_card(name, self.model.created) for name in self.model.names)

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        self._check_ready()
        self._check_model(body.model)
        assert self.formatter is not None
        prompt = self.formatter(body.messages)
        tokens = self.engine.tokenize(prompt.text, add_bos=prompt.add_bos)
        params = self._params(body, len(tokens), body.token_budget(), prompt.stop, "messages")
        return await self._respond("chat", body, tokens, params, request)

    async def completion(self, body: CompletionRequest, request: Request) -> Response:
        self._check_ready()
        self._check_model(body.model)
        value = body.prompt_value()
        tokens = value if isinstance(value, list) else self.engine.tokenize(value, add_bos=True)
        params = self._params(body, len(tokens), body.max_tokens, (), "prompt")
        return await self._respond("completion", body, tokens, params, request)

    # -- validation -------------------------------------------------------

    def _check_ready(self) -> None:
        if not self.readiness.ready:
            raise not_ready(self.readiness.detail)

    def _check_model(self, name: str | None) -> None:
        if name is not None and name not in self.model.names:
            raise unknown_model(name, self.model.names)

    def _params(
        self,
        body: SamplingFields,
        prompt_len: int,
        budget: int | None,
        template_stops: tuple[str, ...],
        prompt_param: str,
    ) -> GenerationParams:
        n_ctx = self.engine.n_ctx
        if prompt_len >= n_ctx:
            raise BadRequest(
                f"This model's maximum context length is {n_ctx} tokens. However, your "
                f"prompt is {prompt_len} tokens long. Please shorten it.",
                param=prompt_param,
                code="context_length_exceeded",
            )
        room = n_ctx - prompt_len
        if budget is not None and budget > room:
            raise BadRequest(
                f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                f"{prompt_len + budget} tokens ({prompt_len} in the prompt, {budget} for the "
                "completion). Please reduce the prompt or max_tokens.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        if prompt_len == 0:
            raise BadRequest("The prompt is empty.", param=prompt_param)
        return GenerationParams(
            max_tokens=budget if budget is not None else min(self.max_tokens_default, room),
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            min_p=body.min_p,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            repeat_penalty=body.repeat_penalty,
            seed=body.seed,
            ignore_eos=body.ignore_eos,
            stop=(*template_stops, *body.stop_list()),
        )

    # -- generation -------------------------------------------------------

    async def _generate(
        self, prompt: list[int], params: GenerationParams, cancel: threading.Event
    ) -> AsyncGenerator[str | Finish, None]:
        """Admit, generate, record metrics; the slot is released when this closes."""
        started = time.perf_counter()
        try:
            await self.admission.acquire()
        except QueueFull:
            self.metrics.rejected.inc()
            raise busy() from None
        first_at: float | None = None
        finished = False
        usage = Usage()
        stream = self.engine.generate(prompt, params, cancel, usage)
        try:
            async for item in stream:
                if first_at is None:
                    first_at = time.perf_counter()
                    self.metrics.ttft.observe(first_at - started)
                finished = isinstance(item, Finish)
                yield item
        finally:
            cancel.set()
            # Shielded: a disconnect cancels this task, and the slot must not be
            # handed on before the engine has really stopped.
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            self.admission.release()
            self._record(usage, first_at, finished)

    def _record(self, usage: Usage, first_at: float | None, finished: bool) -> None:
        self.metrics.prompt_tokens.inc(usage.prompt_tokens)
        self.metrics.generated_tokens.inc(usage.completion_tokens)
        if not finished:
            self.metrics.cancelled.inc()
        elapsed = time.perf_counter() - first_at if first_at is not None else 0.0
        if finished and usage.completion_tokens > 1 and elapsed > 0:
            self.metrics.tokens_per_second.observe((usage.completion_tokens - 1) / elapsed)

    async def _respond(
        self,
        kind: Kind,
        body: SamplingFields,
        prompt: list[int],
        params: GenerationParams,
        request: Request,
    ) -> Response:
        cancel = threading.Event()
        items = self._generate(prompt, params, cancel)
        try:
            first = await unless_disconnected(request, anext(items))
        except ClientGone:
            await items.aclose()
            return Response(status_code=499)
        except EngineError as exc:
            await items.aclose()
            log.error("generation failed before the first token: %s", exc)
            raise APIError("The model failed to generate a response.", status_code=500) from exc
        except StopAsyncIteration:
            raise APIError("The model produced no output.", status_code=500) from None
        except BaseException:
            await items.aclose()
            raise
        shape = _Shape(kind, self.model.id)
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            return ClosingStreamingResponse(self._sse(shape, first, items, usage))
        try:
            return await unless_disconnected(request, self._collect(shape, first, items))
        except ClientGone:
            return Response(status_code=499)
        finally:
            await items.aclose()

    async def _collect(
        self, shape: _Shape, first: str | Finish, items: AsyncIterator[str | Finish]
    ) -> JSONResponse:
        parts: list[str] = []
        item = first
        while not isinstance(item, Finish):
            parts.append(item)
            try:
                item = await anext(items)
            except EngineError as exc:
                log.error("generation failed: %s", exc)
                raise APIError("The model failed while generating.", status_code=500) from exc
        return JSONResponse(shape.full("".join(parts), item))

    async def _sse(
        self,
        shape: _Shape,
        first: str | Finish,
        items: AsyncGenerator[str | Finish, None],
        include_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        try:
            if shape.kind == "chat":
                yield sse(shape.chunk({"role": "assistant", "content": ""}, None))
            item = first
            while not isinstance(item, Finish):
                yield sse(shape.delta(item))
                item = await anext(items)
            yield sse(shape.final(item))
            if include_usage:
                yield sse(shape.usage_chunk(item))
            yield DONE
        except EngineError as exc:
            log.error("generation failed mid-stream: %s", exc)
            yield sse_error("The model failed while generating.")
        finally:
            await items.aclose()


class _Shape:
    """Builds OpenAI response objects for one request."""

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self.model = model
        self.created = int(time.time())
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
        if self.kind == "chat":
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {
                "index": 0,
                "text": delta.get("content", ""),
                "logprobs": None,
                "finish_reason": finish,
            }
        return {**self._envelope(self.object), "choices": [choice]}

    def delta(self, text: str) -> dict[str, Any]:
        return self.chunk({"content": text}, None)

    def final(self, finish: Finish) -> dict[str, Any]:
        return self.chunk({} if self.kind == "chat" else {"content": ""}, finish.reason)

    @staticmethod
    def usage(finish: Finish) -> dict[str, int]:
        return {
            "prompt_tokens": finish.prompt_tokens,
            "completion_tokens": finish.completion_tokens,
            "total_tokens": finish.prompt_tokens + finish.completion_tokens,
        }

    def usage_chunk(self, finish: Finish) -> dict[str, Any]:
        return {**self._envelope(self.object), "choices": [], "usage": self.usage(finish)}

    def full(self, text: str, finish: Finish) -> dict[str, Any]:
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish.reason,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish.reason}
            obj = "text_completion"
        return {**self._envelope(obj), "choices": [choice], "usage": self.usage(finish)}
