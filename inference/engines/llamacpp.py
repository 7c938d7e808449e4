"""In-process engine: llama.cpp's C API through llama-cpp-python, continuously batched.

The model and one context of ``PARALLEL`` sequences live in this process; the
``Scheduler`` thread decodes all running sequences together. LoRA adapters are
loaded on first use (``llama_adapter_lora_init``, ~10 ms) and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from inference.adapters import misfit
from inference.engines.base import (
    Adapter,
    AdapterError,
    Done,
    EngineError,
    Event,
    Job,
)
from inference.engines.scheduler import Failure, Scheduler, Ticket
from inference.vocab import Vocab, native

if TYPE_CHECKING:
    from inference.settings import InferenceSettings

log = logging.getLogger("p2.inference")


class LlamaCppEngine:
    """``PARALLEL`` sequences of ``CTX_SIZE`` tokens each on one llama.cpp context."""

    def __init__(self, model_path: Path, settings: InferenceSettings) -> None:
        self._path = model_path
        self._settings = settings
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Vocab | None = None
        self._scheduler: Scheduler | None = None
        self._adapters: dict[str, tuple[int, Any]] = {}  # id -> (file mtime_ns, adapter)
        self._adapters_lock = threading.Lock()

    def load(self) -> None:
        # Busy-waiting OpenMP threads starve a second server on small machines.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        api = native()
        s = self._settings
        api.llama_backend_init()
        params = api.llama_model_default_params()
        params.n_gpu_layers = s.n_gpu_layers
        model = api.llama_model_load_from_file(str(self._path).encode(), params)
        if not model:
            raise EngineError(f"cannot load {self._path}: not a GGUF llama.cpp can read")
        self._model = model
        cparams = api.llama_context_default_params()
        cparams.n_ctx = s.ctx_size * s.slots
        cparams.n_batch = cparams.n_ubatch = s.n_batch
        cparams.n_seq_max = s.slots
        cparams.n_threads = cparams.n_threads_batch = s.n_threads
        cparams.kv_unified = False  # one KV stream per sequence, as llama-server -np
        cparams.swa_full = False  # sliding-window caches at window size (llama-server's default)
        cparams.no_perf = True
        ctx = api.llama_init_from_model(model, cparams)
        if not ctx:
            raise EngineError(f"cannot create a context of {cparams.n_ctx} tokens")
        self._ctx = ctx
        self._vocab = Vocab(model, owned=False)
        self._scheduler = Scheduler(model, ctx, self._vocab, slots=s.slots, n_batch=s.n_batch)

    @property
    def vocab(self) -> Vocab:
        if self._vocab is None:
            raise EngineError("model not loaded")
        return self._vocab

    @property
    def n_ctx(self) -> int:
        return self._settings.ctx_size

    def adapter_ids(self) -> frozenset[str] | None:
        return None  # any adapter file, loaded on first use

    def use_adapter(self, adapter: Adapter) -> Any:
        """The loaded adapter (blocking on first use: call it off the event loop)."""
        try:
            mtime = adapter.path.stat().st_mtime_ns
        except OSError as exc:
            raise AdapterError(f"the adapter '{adapter.id}' is not available") from exc
        with self._adapters_lock:
            cached = self._adapters.get(adapter.id)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            # Checked first from the headers: a malformed file must not reach llama.cpp's loader
            # in this process. A replaced file is loaded again; the old copy stays in memory
            # (running sequences may use it).
            why = misfit(adapter.path, self._path)
            if why is not None:
                raise AdapterError(f"the adapter '{adapter.id}' does not fit this model: {why}")
            loaded = native().llama_adapter_lora_init(self._model, str(adapter.path).encode())
            if not loaded:
                raise AdapterError(
                    f"the adapter '{adapter.id}' does not fit this model (or is not a LoRA GGUF)"
                )
            self._adapters[adapter.id] = (mtime, loaded)
            log.info("loaded LoRA adapter %s", adapter.id)
            return loaded

    def start(self, job: Job) -> LocalGeneration:
        if self._scheduler is None:
            raise EngineError("model not loaded")
        adapter = self.use_adapter(job.adapter) if job.adapter is not None else None
        return LocalGeneration(self._scheduler, job, adapter)

    async def aclose(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await anyio.to_thread.run_sync(scheduler.close)
        api = native()
        if self._ctx is not None:
            api.llama_free(self._ctx)
            self._ctx = None
        for _, adapter in self._adapters.values():
            api.llama_adapter_lora_free(adapter)
        self._adapters.clear()
        if self._model is not None:
            api.llama_model_free(self._model)
            self._model = None


class LocalGeneration:
    """A job on the scheduler, its events carried to the event loop per step."""

    def __init__(self, scheduler: Scheduler, job: Job, adapter: Any) -> None:
        loop = asyncio.get_running_loop()
        self._scheduler = scheduler
        self._n = job.n
        self._queue: asyncio.Queue[list[Event] | Failure] = asyncio.Queue()
        self._released = asyncio.Event()

        def deliver(events: list[Event] | Failure) -> None:
            _call_soon(loop, self._queue.put_nowait, events)

        def released() -> None:
            _call_soon(loop, self._released.set)

        self._ticket: Ticket = scheduler.submit(job, adapter, deliver, released)

    async def events(self) -> AsyncIterator[list[Event]]:
        open_choices = self._n
        while open_choices:
            batch = await self._queue.get()
            if isinstance(batch, Failure):
                raise EngineError(str(batch))
            open_choices -= sum(1 for event in batch if isinstance(event, Done))
            yield batch

    def stop(self, index: int) -> None:
        self._ticket.stop(index)

    async def aclose(self) -> None:
        self._scheduler.cancel(self._ticket)
        with anyio.CancelScope(shield=True):
            await self._released.wait()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(callback, *args)


__all__ = ["LlamaCppEngine", "LocalGeneration"]
