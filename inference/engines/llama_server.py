"""Native engine: llama.cpp's ``llama-server`` as a child process on a private port.

P2's front (validation, templates, grammars, tools, queue, metrics, errors) stays
the same; generation goes to llama-server's native ``/completion`` with the
prompt as token ids, so both engines tokenize and validate identically.

The child listens on loopback with a random key (``--api-key``, passed in its
environment as ``LLAMA_API_KEY`` so it does not show in ``ps``): only this
process can call it. LoRA adapters present at start are loaded at scale 0 and
applied per request with an explicit scale for every adapter (llama-server
reuses a stale prompt cache when a request leaves its list out). Streams are
sent with ``Connection: close``: llama-server drops kept-alive connections
after a stream now and then.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from inference.adapters import misfit
from inference.build import find_llama_server
from inference.engines.base import (
    Adapter,
    AdapterError,
    Done,
    EngineError,
    Event,
    FinishReason,
    Job,
    Token,
    TokenLogprob,
)
from inference.vocab import Vocab
from p2.core.process import ProcessError, free_port, spawn, terminate, wait_healthy

if TYPE_CHECKING:
    from inference.settings import InferenceSettings
    from p2.core.settings import CoreSettings

log = logging.getLogger("p2.inference")

LOAD_TIMEOUT = 600.0
_PATTERN_TRIGGER = 2  # llama.cpp's COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN


class LlamaServerEngine:
    """``on_exit`` is told if llama-server dies, so ``/health`` stops claiming readiness."""

    def __init__(
        self,
        model_path: Path,
        settings: InferenceSettings,
        core: CoreSettings,
        adapters: list[Adapter],
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self._path = model_path
        self._settings = settings
        self._core = core
        self._wanted = adapters
        self._adapters: list[Adapter] = []
        self._on_exit = on_exit
        self._closing = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._vocab: Vocab | None = None
        self._client: httpx.AsyncClient | None = None
        self._n_ctx = settings.ctx_size

    def load(self) -> None:
        binary = find_llama_server(self._settings.llama_server_bin)
        if binary is None:
            raise EngineError(
                "llama-server binary not found: run `make llama-server` (or `p2 build "
                "llama-server`), put llama-server on PATH, or set LLAMA_SERVER_BIN"
            )
        key = secrets.token_urlsafe(32)
        usable = []
        for adapter in self._wanted:
            why = misfit(adapter.path, self._path)
            if {",", ":"} & set(str(adapter.path)):  # llama-server's list syntax
                why = "its path holds ',' or ':'"
            if why is None:
                usable.append(adapter)
            else:
                log.error("LoRA adapter %s left out: %s", adapter.id, why)
        try:
            port = self._start(binary, key, usable)
        except EngineError:
            if not usable:
                raise
            log.error("llama-server did not start with its LoRA adapters; starting without")
            usable = []
            port = self._start(binary, key, usable)
        self._adapters = usable
        self._vocab = Vocab.load(self._path)
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=self._settings.slots * 2),
        )
        threading.Thread(target=self._watch, name="llama-server-watch", daemon=True).start()

    def _start(self, binary: Path, key: str, adapters: list[Adapter]) -> int:
        s = self._settings
        port = free_port()
        argv = [
            str(binary),
            "-m",
            str(self._path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            str(s.ctx_size * s.slots),
            "-np",
            str(s.slots),
            "-t",
            str(s.n_threads),
            "-tb",
            str(s.n_threads),
            "-b",
            str(s.n_batch),
            "-ub",
            str(s.n_batch),
            "-ngl",
            str(s.n_gpu_layers),
            "--metrics",
            "--no-webui",
        ]
        for adapter in adapters:  # scale 0: a request opts in
            argv += ["--lora-scaled", f"{adapter.path}:0"]
        log_path = self._core.logs_dir / f"llama-server-{s.role.value}.log"
        env = {"OMP_WAIT_POLICY": "passive", "LLAMA_API_KEY": key}
        self._proc = spawn(argv, log_path=log_path, env=env)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", timeout=LOAD_TIMEOUT, proc=self._proc)
        except ProcessError as exc:
            terminate(self._proc)
            raise EngineError(f"llama-server did not start ({exc}); see {log_path}") from exc
        self._n_ctx = self._slot_context(port, key)
        return port

    def _slot_context(self, port: int, key: str) -> int:
        """Each slot's context as llama-server set it up: it caps ``CTX_SIZE`` at the
        model's training context, and P2 must refuse longer prompts itself (400), not
        pass them on to fail there."""
        try:
            props = httpx.get(
                f"http://127.0.0.1:{port}/props",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10.0,
            ).json()
            n_ctx = int(props["default_generation_settings"]["n_ctx"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("llama-server's /props did not say its slot context (%s)", exc)
            return self._settings.ctx_size
        return min(n_ctx, self._settings.ctx_size) if n_ctx > 0 else self._settings.ctx_size

    def _watch(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        if not self._closing and self._on_exit is not None:
            self._on_exit(f"llama-server exited with code {code}")

    @property
    def vocab(self) -> Vocab:
        if self._vocab is None:
            raise EngineError("model not loaded")
        return self._vocab

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def adapter_ids(self) -> frozenset[str] | None:
        return frozenset(a.id for a in self._adapters)

    def use_adapter(self, adapter: Adapter) -> object:
        if adapter.id not in self.adapter_ids():  # type: ignore[operator]
            raise AdapterError(f"the adapter '{adapter.id}' was not loaded at start")
        return adapter

    def start(self, job: Job) -> ServerGeneration:
        if self._client is None:
            raise EngineError("llama-server is not running")
        return ServerGeneration(self._client, self._payload(job), job)

    def _payload(self, job: Job) -> dict[str, Any]:
        s = job.sampling
        payload: dict[str, Any] = {
            "prompt": list(job.prompt),
            "n_predict": job.max_tokens,
            "stream": True,
            "return_tokens": True,
            "cache_prompt": True,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
            "repeat_penalty": s.repeat_penalty,
            "seed": s.seed,
            "ignore_eos": s.ignore_eos,
        }
        if s.logit_bias:
            payload["logit_bias"] = [[token, bias] for token, bias in s.logit_bias]
        if job.n > 1:
            payload["n_cmpl"] = job.n
        if job.logprobs is not None:
            payload["n_probs"] = max(1, job.logprobs)
        if job.grammar is not None:
            payload["grammar"] = job.grammar.gbnf
            if job.grammar.triggers:
                payload["grammar_lazy"] = True
                payload["grammar_triggers"] = [
                    {"type": _PATTERN_TRIGGER, "value": t} for t in job.grammar.triggers
                ]
        if self._adapters:  # always the full list: a missing one may reuse a stale cache
            wanted = job.adapter.id if job.adapter is not None else None
            payload["lora"] = [
                {"id": i, "scale": 1.0 if a.id == wanted else 0.0}
                for i, a in enumerate(self._adapters)
            ]
        return payload

    async def aclose(self) -> None:
        self._closing = True
        if self._client is not None:
            await self._client.aclose()
        if self._proc is not None:
            terminate(self._proc, grace=5.0)
        if self._vocab is not None:
            self._vocab.close()


class ServerGeneration:
    """One ``/completion`` stream (all ``n`` choices of a job ride on it)."""

    def __init__(self, client: httpx.AsyncClient, payload: dict[str, Any], job: Job) -> None:
        self._client = client
        self._payload = payload
        self._job = job
        self._stopped: set[int] = set()
        self._done: set[int] = set()
        self._stream = self._run()

    def events(self) -> AsyncIterator[list[Event]]:
        return self._stream

    def stop(self, index: int) -> None:
        self._stopped.add(index)

    async def aclose(self) -> None:
        await self._stream.aclose()  # closing the connection cancels llama-server's task

    async def _run(self) -> AsyncGenerator[list[Event], None]:
        n = self._job.n
        try:
            async with self._client.stream(
                "POST", "/completion", json=self._payload, headers={"Connection": "close"}
            ) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")[:300]
                    raise EngineError(f"llama-server answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    batch = self._events(orjson.loads(line[6:]))
                    if batch:
                        yield batch
                    if len(self._done) == n:
                        return
                    if len(self._done | self._stopped) == n:
                        for index in sorted(set(range(n)) - self._done):
                            yield [Done(index, FinishReason.STOP, 0)]
                        return
        except httpx.TransportError as exc:
            raise EngineError(f"lost llama-server: {type(exc).__name__}") from exc
        raise EngineError("llama-server ended the stream early")

    def _events(self, data: dict[str, Any]) -> list[Event]:
        if "error" in data:
            raise EngineError(f"llama-server failed: {data['error']}")
        index = int(data.get("index", 0))
        if index in self._done:
            return []
        events: list[Event] = []
        content = str(data.get("content") or "")
        if content and index not in self._stopped:
            events.append(Token(index, content.encode("utf-8"), self._logprob(data)))
        if data.get("stop"):
            kind = data.get("stop_type")
            reason = FinishReason.LENGTH if kind == "limit" else FinishReason.STOP
            tokens = int(data.get("tokens_predicted", 0))
            if kind == "eos":  # llama-server counts the end-of-generation token; P2 does not
                tokens = max(0, tokens - 1)
            self._done.add(index)
            events.append(Done(index, reason, tokens))
        return events

    def _logprob(self, data: dict[str, Any]) -> TokenLogprob | None:
        k = self._job.logprobs
        probs = data.get("completion_probabilities")
        if k is None or not probs:
            return None
        last = probs[-1]
        top = tuple((int(p["id"]), float(p["logprob"])) for p in last.get("top_logprobs", [])[:k])
        return TokenLogprob(int(last["id"]), float(last["logprob"]), top)
