"""What the service asks of an engine: token ids in, token events out.

Everything else (templates, tokenizing, grammars for ``response_format`` and tools,
stop strings, ``n`` bookkeeping, logprob formatting, errors) lives in P2's front,
shared by both engines, so they pass the same contract by construction.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inference.vocab import Vocab


class EngineError(RuntimeError):
    """Generation failed inside the engine (not the client's fault)."""


class AdapterError(ValueError):
    """A LoRA adapter cannot be applied to this model (the client named it: a 400)."""


class FinishReason(enum.StrEnum):
    """Why a choice ended, as OpenAI's ``finish_reason`` says it."""

    STOP = "stop"  # end of text, a stop string, or the choice was stopped
    LENGTH = "length"  # the token budget ran out


@dataclass(frozen=True)
class Sampling:
    """One request's sampler settings; ``seed`` is always set (a random one if not given)."""

    seed: int
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    ignore_eos: bool = False

    @property
    def penalized(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty or self.repeat_penalty != 1)


PENALTY_LAST_N = 64  # tokens the penalties look back over (llama-server's default)


@dataclass(frozen=True)
class Grammar:
    """GBNF (root rule ``root``); with ``triggers`` it is lazy: free text until the output
    matches one of those regular expressions, constrained from the match on."""

    gbnf: str
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter GGUF applied to one request (scale 1)."""

    id: str
    path: Path


@dataclass(frozen=True)
class Job:
    """One request for an engine: ``n`` choices continuing ``prompt``."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling
    n: int = 1
    grammar: Grammar | None = None
    logprobs: int | None = None  # None: off; k: the chosen token's logprob and k alternatives
    adapter: Adapter | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probabilities under the model's raw distribution (before sampling)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Token:
    """Choice ``index`` produced ``piece`` (the bytes of one token, or of several when an
    engine holds back a split UTF-8 character)."""

    index: int
    piece: bytes
    logprob: TokenLogprob | None = None


@dataclass(frozen=True)
class Done:
    """Choice ``index`` ended after ``tokens`` generated tokens."""

    index: int
    reason: FinishReason
    tokens: int


Event = Token | Done


class Generation(Protocol):
    """A running job. Consume ``events`` until every choice is ``Done``; ``aclose`` always."""

    def events(self) -> AsyncIterator[list[Event]]:
        """Events in batches (one engine step's worth); raises ``EngineError`` on failure."""

    def stop(self, index: int) -> None:
        """Choice ``index`` needs no more tokens (a stop string matched)."""

    async def aclose(self) -> None:
        """Cancel what still runs and return once the engine has let go of the job."""


class Engine(Protocol):
    @property
    def vocab(self) -> Vocab: ...

    @property
    def n_ctx(self) -> int:
        """Context per sequence: prompt plus generated tokens must fit."""

    def load(self) -> None:
        """Blocking: load the model. Called once, off the event loop."""

    def start(self, job: Job) -> Generation:
        """Queue ``job``; the caller has reserved ``job.n`` slots. ``AdapterError`` if the
        job's adapter does not fit this model."""

    def adapter_ids(self) -> frozenset[str] | None:
        """Adapters this engine can apply: None for any file (hot-loaded), else the set."""

    def use_adapter(self, adapter: Adapter) -> object:
        """Blocking (call it off the event loop): make ``adapter`` ready for ``start``;
        ``AdapterError`` if this engine cannot apply it."""

    async def aclose(self) -> None: ...
