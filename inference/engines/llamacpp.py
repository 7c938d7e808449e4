"""In-process engine: one ``llama_cpp.Llama`` driven token by token on a worker thread."""

from __future__ import annotations

import ctypes
import os
import random
import threading
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.engines.base import EngineError, Finish, FinishReason, GenerationParams, Usage
from inference.engines.bridge import iterate_in_thread
from inference.stop_scanner import StopScanner

if TYPE_CHECKING:
    from inference.settings import InferenceSettings


class LlamaCppEngine:
    """Serves one request at a time; the service queues the rest."""

    def __init__(self, model_path: Path, settings: InferenceSettings) -> None:
        self._path = model_path
        self._settings = settings
        self._llm: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._buffer = ctypes.create_string_buffer(64)

    def load(self) -> None:
        # Busy-waiting OpenMP threads starve a second server on small machines.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        import llama_cpp

        s = self._settings
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self._path),
                n_ctx=s.ctx_size,
                n_threads=s.n_threads,
                n_threads_batch=s.n_threads,
                n_batch=min(s.n_batch, s.ctx_size),
                n_gpu_layers=s.n_gpu_layers,
                logits_all=False,
                verbose=False,
            )
        except ValueError as exc:  # llama_cpp reports a bad GGUF as ValueError
            raise EngineError(f"cannot load {self._path}: {exc}") from exc
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = self._llm._model.vocab

    @property
    def llm(self) -> Any:
        if self._llm is None:
            raise EngineError("model not loaded")
        return self._llm

    @property
    def n_ctx(self) -> int:
        return int(self.llm.n_ctx())

    @property
    def chat_template(self) -> str | None:
        template = self.llm.metadata.get("tokenizer.chat_template")
        return str(template) if template else None

    @property
    def bos_token(self) -> str:
        token = self.llm.token_bos()
        return str(self.llm._model.token_get_text(token)) if token >= 0 else ""

    @property
    def eos_token(self) -> str:
        token = self.llm.token_eos()
        return str(self.llm._model.token_get_text(token)) if token >= 0 else ""

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def generate(
        self, prompt: list[int], params: GenerationParams, cancel: threading.Event, usage: Usage
    ) -> AsyncGenerator[str | Finish, None]:
        return iterate_in_thread(
            self._executor, lambda: self._generate_blocking(prompt, params, cancel, usage), cancel
        )

    def _generate_blocking(
        self, prompt: list[int], params: GenerationParams, cancel: threading.Event, usage: Usage
    ) -> Iterator[str | Finish]:
        llm = self.llm
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
        scanner = StopScanner(list(params.stop))
        generated = 0
        usage.prompt_tokens = len(prompt)
        reason = FinishReason.LENGTH
        tokens = llm.generate(
            prompt,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            reset=True,
        )
        try:
            for token in tokens:
                if cancel.is_set():
                    reason = FinishReason.STOP
                    break
                if self._is_eog(self._vocab, token) and not params.ignore_eos:
                    reason = FinishReason.STOP
                    break
                generated += 1
                usage.completion_tokens = generated
                text = scanner.feed(self._piece(token))
                if text:
                    yield text
                if scanner.stopped:
                    reason = FinishReason.STOP
                    break
                if generated >= params.max_tokens:
                    break
        finally:
            tokens.close()
        tail = scanner.flush()
        if tail:
            yield tail
        yield Finish(reason, len(prompt), generated)

    def _piece(self, token: int) -> bytes:
        """The token's bytes, leading space kept (``Llama.detokenize`` strips it)."""
        import llama_cpp

        size = len(self._buffer)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, size, 0, False)
        if n < 0:
            self._buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, -n, 0, False)
        return bytes(self._buffer.raw[:n])

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


__all__ = ["LlamaCppEngine"]
