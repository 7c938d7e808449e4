"""The gateway's wire format as pydantic models, for its OpenAPI document only.

Requests are never validated against these on the hot path (``gateway.protocol``
checks the few fields routing needs, the backend the rest); they say what a
client may send and what it gets back, closely enough for a fuzzer. Every
model allows extra fields: OpenAI's API grows, and the gateway forwards what
it does not know.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# Requests


class ChatMessage(_Open):
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class _Generation(_Open):
    model: str = Field(description="A model group (chat: also rag/<collection> with RAG_URL).")
    stream: bool | None = Field(False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Generation):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, texts, or token ids."
    )
    echo: bool | None = None


class EmbeddingRequest(_Open):
    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, texts, or token ids; not empty."
    )
    encoding_format: Literal["float", "base64"] | None = None


# Answers


class ErrorDetail(_Open):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(_Open):
    """OpenAI's error format: every error the gateway or a backend gives."""

    error: ErrorDetail


class Usage(_Open):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatChoice(_Open):
    index: int
    message: dict[str, Any]
    finish_reason: str | None = None


class ChatCompletion(_Open):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None = None


class Completion(_Open):
    id: str
    object: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Open):
    object: str
    index: int
    embedding: list[float] | str


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str | None = None
    usage: Usage | None = None


BackendStateName = Literal["unknown", "up", "loading", "down", "cooldown"]


class BackendDetail(_Open):
    """A backend as admins see it."""

    backend: str
    api_base: str
    state: BackendStateName
    in_rotation: bool
    detail: str
    model: str
    order: int


class ModelCard(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    backends: list[BackendDetail] | None = Field(None, description="Admin keys only.")


class ModelList(_Open):
    object: Literal["list"]
    data: list[ModelCard]


class Liveness(_Open):
    status: Literal["ok"]


class Readiness(_Open):
    status: Literal["ok", "unavailable"]
    models: dict[str, Literal["ok", "unavailable"]] = Field(
        description="Each model group: ok when one of its backends is healthy and in rotation."
    )
    backends: dict[str, list[BackendDetail]] | None = Field(
        None, description="Each group's backends, in order: admin keys only."
    )
    error: ErrorDetail | None = None


REQUESTS: tuple[type[BaseModel], ...] = (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
ANSWERS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    ChatCompletion,
    Completion,
    EmbeddingList,
    ModelList,
    Liveness,
    Readiness,
)
