"""What the service needs from an engine, and nothing more."""

from __future__ import annotations

import enum
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol


class EngineError(RuntimeError):
    """Generation failed inside the engine (not the client's fault)."""


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
    stop: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Usage:
    """Filled in by the engine as it goes, so abandoned generations are counted too."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class FinishReason(enum.StrEnum):
    """Why a generation ended, as OpenAI's ``finish_reason`` says it."""

    STOP = "stop"  # end of text, a stop string, or the generation was cancelled
    LENGTH = "length"  # the token budget ran out


@dataclass(frozen=True)
class Finish:
    """The last item of a generation stream."""

    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    @property
    def n_ctx(self) -> int: ...

    @property
    def chat_template(self) -> str | None:
        """The GGUF's ``tokenizer.chat_template``, if it has one."""

    @property
    def bos_token(self) -> str: ...

    @property
    def eos_token(self) -> str: ...

    def load(self) -> None:
        """Blocking: load the model. Called once, off the event loop."""

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]: ...

    def generate(
        self, prompt: list[int], params: GenerationParams, cancel: threading.Event, usage: Usage
    ) -> AsyncGenerator[str | Finish, None]:
        """Yield text deltas, then one ``Finish``. Setting ``cancel`` stops it soon."""

    async def aclose(self) -> None: ...
