"""The inference service: validate, plan off the loop, queue, generate, answer in OpenAI's shape."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from inference import adapters
from inference.adapters import AdapterDirectory
from inference.admission import Admission
from inference.decoding import Answer
from inference.engines.base import Adapter, Engine, EngineError, Event, Generation, Token
from inference.metrics import InferenceMetrics
from inference.planning import Plan, Planner, chat_chars, too_long
from inference.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from inference.responses import ClientGone, ClosingStreamingResponse, unless_disconnected
from inference.settings import InferenceSettings
from inference.shapes import Kind, Shaper, usage
from p2.core.errors import APIError, BadRequest
from p2.core.health import Readiness
from p2.core.openai import QueueFull, busy, model_card, model_list, not_ready, unknown_model
from p2.core.sse import DONE, sse, sse_error

log = logging.getLogger("p2.inference")

PLANNERS = 2  # requests rendered and tokenized at once, on worker threads


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
        settings: InferenceSettings,
        readiness: Readiness,
        admission: Admission,
        metrics: InferenceMetrics,
        adapter_root: Path,
    ) -> None:
        self.model = model
        self.settings = settings
        self.readiness = readiness
        self.admission = admission
        self.metrics = metrics
        self.adapters = AdapterDirectory(adapter_root, model.names)
        self._engine: Engine | None = None
        self._planner: Planner | None = None
        self._limiter = anyio.CapacityLimiter(PLANNERS)

    def attach(self, engine: Engine, planner: Planner, model: ServedModel) -> None:
        """Called once the model is loaded; the service is ready after this."""
        self._engine, self._planner, self.model = engine, planner, model
        self.adapters = AdapterDirectory(self.adapters.root, model.names)
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
        names = list(self.model.names)
        if self._engine is not None:
            names += self.adapters.listed(self._engine.adapter_ids())
        return model_list(model_card(name, self.model.created) for name in names)

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        reported, adapter = self._prepare(body)
        refusal = too_long(
            chat_chars(body),
            self.settings.prompt_chars_limit,
            self.settings.env_name("max_prompt_chars"),
            "messages",
        )
        if refusal is not None:
            raise refusal
        planner = self._ready_planner()
        plan = await anyio.to_thread.run_sync(planner.chat, body, adapter, limiter=self._limiter)
        return await self._respond("chat", reported, body, plan, request)

    async def completion(self, body: CompletionRequest, request: Request) -> Response:
        reported, adapter = self._prepare(body)
        value = body.prompt_value()
        if isinstance(value, str):
            refusal = too_long(
                len(value),
                self.settings.prompt_chars_limit,
                self.settings.env_name("max_prompt_chars"),
                "prompt",
            )
            if refusal is not None:
                raise refusal
        planner = self._ready_planner()
        plan = await anyio.to_thread.run_sync(
            planner.completion, body, adapter, limiter=self._limiter
        )
        return await self._respond("completion", reported, body, plan, request)

    # -- validation -------------------------------------------------------

    def _ready_planner(self) -> Planner:
        if not self.readiness.ready or self._planner is None:
            raise not_ready(self.readiness.detail)
        return self._planner

    def _prepare(self, body: SamplingFields) -> tuple[str, Adapter | None]:
        """The model name to report and the adapter to apply; 4xx on what cannot be served."""
        self._ready_planner()
        body.check()
        if body.n > self.admission.slots:
            raise BadRequest(
                f"'n' is at most {self.admission.slots} on this server "
                f"({self.settings.env_name('parallel')}).",
                param="n",
            )
        name = body.model
        if name is None or name in self.model.names:
            return self.model.id, None
        adapter_name = adapters.parse(name)
        if adapter_name is None:
            raise unknown_model(name, self.model.names)
        adapter = self.adapters.resolve(adapter_name)
        servable = self.engine.adapter_ids()
        if servable is not None and adapter.id not in servable:
            raise BadRequest(
                f"The adapter '{adapter.id}' was added after this server's llama-server engine "
                "started; it serves adapters present at start only. Restart this inference "
                "server (or use the llama-cpp engine) to serve it.",
                param="model",
                code="adapter_not_loaded",
            )
        return str(adapter_name), adapter

    # -- generation -------------------------------------------------------

    async def _respond(
        self, kind: Kind, reported: str, body: SamplingFields, plan: Plan, request: Request
    ) -> Response:
        run = Run(self, plan)
        await run.start()
        try:
            first = await unless_disconnected(request, run.next())
        except ClientGone:
            await run.close()
            return Response(status_code=499)
        except EngineError as exc:
            await run.close()
            log.error("generation failed before the first token: %s", exc)
            raise APIError("The model failed to generate a response.", status_code=500) from exc
        except BaseException:
            await run.close()
            raise
        shaper = Shaper(kind, reported, self.engine.vocab.piece)
        answer = Answer(plan.job.n, plan.stops, plan.tools, plan.single_call)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return ClosingStreamingResponse(
                self._sse(shaper, answer, plan, run, first, include_usage)
            )
        try:
            collected = self._collect(shaper, answer, plan, run, first)
            return await unless_disconnected(request, collected)
        except ClientGone:
            return Response(status_code=499)
        finally:
            await run.close()

    async def _collect(
        self, shaper: Shaper, answer: Answer, plan: Plan, run: Run, first: list[Event] | None
    ) -> JSONResponse:
        texts: list[list[str]] = [[] for _ in range(plan.job.n)]
        logprobs: list[list[Any]] = [[] for _ in range(plan.job.n)]
        batch = first
        try:
            while batch is not None:
                for index, piece in answer.feed(batch):
                    texts[index].append(piece.text)
                    logprobs[index] += piece.logprobs
                run.stop_choices(answer.stopped())
                batch = await run.next()
        except EngineError as exc:
            log.error("generation failed: %s", exc)
            raise APIError("The model failed while generating.", status_code=500) from exc
        choices = [
            shaper.choice(
                i,
                "".join(texts[i]),
                answer.choices[i].calls,
                answer.finish.get(i, "stop"),
                logprobs[i] if plan.logprobs else None,
            )
            for i in range(plan.job.n)
        ]
        return JSONResponse(shaper.full(choices, usage(len(plan.job.prompt), answer.tokens)))

    async def _sse(
        self,
        shaper: Shaper,
        answer: Answer,
        plan: Plan,
        run: Run,
        first: list[Event] | None,
        include_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        calls_sent = [0] * plan.job.n
        try:
            if shaper.kind == "chat":
                for index in range(plan.job.n):
                    yield sse(shaper.chunk([shaper.opening(index)]))
            batch = first
            while batch is not None:
                for index, piece in answer.feed(batch):
                    for choice in shaper.delta(index, piece, calls_sent[index], plan.logprobs):
                        yield sse(shaper.chunk([choice]))
                    calls_sent[index] += len(piece.calls)
                for index in {e.index for e in batch if not isinstance(e, Token)}:
                    yield sse(shaper.chunk([shaper.closing(index, answer.finish[index])]))
                run.stop_choices(answer.stopped())
                batch = await run.next()
            if include_usage:
                yield sse(shaper.usage_chunk(usage(len(plan.job.prompt), answer.tokens)))
            yield DONE
        except EngineError as exc:
            log.error("generation failed mid-stream: %s", exc)
            yield sse_error("The model failed while generating.")
        finally:
            await run.close()


class Run:
    """One admitted generation: its slots, its engine job, its metrics."""

    def __init__(self, service: InferenceService, plan: Plan) -> None:
        self._service = service
        self._plan = plan
        self._generation: Generation | None = None
        self._events: AsyncIterator[list[Event]] | None = None
        self._started = time.perf_counter()
        self._first_at: float | None = None
        self._tokens = 0
        self._finished = False
        self._closed = False

    async def start(self) -> None:
        service = self._service
        try:
            await service.admission.acquire(self._plan.job.n)
        except QueueFull:
            service.metrics.rejected.inc()
            raise busy() from None
        try:
            self._generation = service.engine.start(self._plan.job)
        except BaseException:
            service.admission.release(self._plan.job.n)
            raise
        self._events = self._generation.events()

    async def next(self) -> list[Event] | None:
        """The next batch of events, None once every choice is done."""
        assert self._events is not None
        try:
            batch = await anext(self._events)
        except StopAsyncIteration:
            self._finished = True
            return None
        if self._first_at is None:
            self._first_at = time.perf_counter()
            self._service.metrics.ttft.observe(self._first_at - self._started)
        self._tokens += sum(1 for event in batch if isinstance(event, Token))
        return batch

    def stop_choices(self, indexes: list[int]) -> None:
        if self._generation is not None:
            for index in indexes:
                self._generation.stop(index)

    async def close(self) -> None:
        """Cancel what still runs, wait until the engine let go, free the slots (once)."""
        if self._closed:
            return
        self._closed = True
        # Shielded: a disconnect cancels this task, and the slots must not be handed
        # on before the engine has really stopped.
        with anyio.CancelScope(shield=True):
            if self._generation is not None:
                await self._generation.aclose()
        self._service.admission.release(self._plan.job.n)
        self._record()

    def _record(self) -> None:
        metrics = self._service.metrics
        metrics.prompt_tokens.inc(len(self._plan.job.prompt))
        metrics.generated_tokens.inc(self._tokens)
        if not self._finished:
            metrics.cancelled.inc()
        elapsed = time.perf_counter() - self._first_at if self._first_at is not None else 0.0
        if self._finished and self._tokens > 1 and elapsed > 0:
            metrics.tokens_per_second.observe((self._tokens - 1) / elapsed)
