"""Native engine: llama.cpp's ``llama-server`` as a child process on a private port.

P2's own front (validation, queue, metrics, error format) stays the same;
generation goes to llama-server's ``/completion`` with the prompt as token
ids, so both engines tokenize and validate identically. llama-server adds
parallel slots and continuous batching.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from inference.build import find_llama_server
from inference.engines.base import EngineError, Finish, FinishReason, GenerationParams, Usage
from p2.core.process import ProcessError, free_port, spawn, terminate, wait_healthy

if TYPE_CHECKING:
    from inference.settings import InferenceSettings
    from p2.core.settings import CoreSettings

LOAD_TIMEOUT = 600.0


class LlamaServerEngine:
    """``on_exit`` is told if llama-server dies, so ``/health`` stops claiming readiness."""

    def __init__(
        self,
        model_path: Path,
        settings: InferenceSettings,
        core: CoreSettings,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self._path = model_path
        self._settings = settings
        self._core = core
        self._on_exit = on_exit
        self._closing = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._vocab: Any = None
        self._client: httpx.AsyncClient | None = None

    def load(self) -> None:
        binary = find_llama_server(self._settings.llama_server_bin)
        if binary is None:
            raise EngineError(
                "llama-server binary not found: run `p2 build llama-server`, put llama-server "
                "on PATH, or set LLAMA_SERVER_BIN"
            )
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
            "-b",
            str(s.n_batch),
            "-ngl",
            str(s.n_gpu_layers),
            "--metrics",
            "--no-webui",
        ]
        log_path = self._core.logs_dir / f"llama-server-{s.role.value}.log"
        self._proc = spawn(argv, log_path=log_path, env={"OMP_WAIT_POLICY": "passive"})
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", timeout=LOAD_TIMEOUT, proc=self._proc)
        except ProcessError as exc:
            terminate(self._proc)
            raise EngineError(f"llama-server did not start ({exc}); see {log_path}") from exc
        import llama_cpp

        self._vocab = llama_cpp.Llama(model_path=str(self._path), vocab_only=True, verbose=False)
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=s.slots * 2, max_keepalive_connections=s.slots),
        )
        threading.Thread(target=self._watch, name="llama-server-watch", daemon=True).start()

    def _watch(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        if not self._closing and self._on_exit is not None:
            self._on_exit(f"llama-server exited with code {code}")

    @property
    def n_ctx(self) -> int:
        return self._settings.ctx_size

    @property
    def chat_template(self) -> str | None:
        template = self._vocab.metadata.get("tokenizer.chat_template") if self._vocab else None
        return str(template) if template else None

    @property
    def bos_token(self) -> str:
        token = self._vocab.token_bos()
        return str(self._vocab._model.token_get_text(token)) if token >= 0 else ""

    @property
    def eos_token(self) -> str:
        token = self._vocab.token_eos()
        return str(self._vocab._model.token_get_text(token)) if token >= 0 else ""

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self._vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    async def generate(
        self, prompt: list[int], params: GenerationParams, cancel: threading.Event, usage: Usage
    ) -> AsyncGenerator[str | Finish, None]:
        if self._client is None:
            raise EngineError("llama-server is not running")
        payload = {
            "prompt": prompt,
            "n_predict": params.max_tokens,
            "stream": True,
            "temperature": params.temperature,
            "top_k": params.top_k,
            "top_p": params.top_p,
            "min_p": params.min_p,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "repeat_penalty": params.repeat_penalty,
            "seed": params.seed if params.seed is not None else -1,
            "stop": list(params.stop),
            "cache_prompt": True,
            "ignore_eos": params.ignore_eos,
        }
        generated = 0
        usage.prompt_tokens = len(prompt)
        try:
            async with self._client.stream("POST", "/completion", json=payload) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace")[:300]
                    raise EngineError(f"llama-server answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = orjson.loads(line[6:])
                    text = data.get("content") or ""
                    if text:
                        generated += 1
                        usage.completion_tokens = generated
                        yield text
                    if data.get("stop"):
                        reason = (
                            FinishReason.LENGTH
                            if data.get("stop_type") == "limit"
                            else FinishReason.STOP
                        )
                        done = int(data.get("tokens_predicted", generated))
                        usage.completion_tokens = done
                        yield Finish(reason, len(prompt), done)
                        return
                    if cancel.is_set():
                        return
        except httpx.TransportError as exc:
            raise EngineError(f"lost llama-server: {type(exc).__name__}") from exc
        raise EngineError("llama-server ended the stream without a final message")

    async def aclose(self) -> None:
        self._closing = True
        if self._client is not None:
            await self._client.aclose()
        if self._proc is not None:
            terminate(self._proc, grace=5.0)
