"""Inference server settings, read from ``CHAT_*`` or ``CODE_*`` env by role."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings, given


class Role(StrEnum):
    CHAT = "chat"
    CODE = "code"


class EngineKind(StrEnum):
    LLAMA_CPP = "llama-cpp"
    LLAMA_SERVER = "llama-server"


DEFAULT_PORTS = {Role.CHAT: 8001, Role.CODE: 8004}

# Characters allowed per token of context before tokenizing: English runs ~4 per token,
# code and odd text more; a prompt past this many cannot fit and is refused unread.
CHARS_PER_TOKEN_BOUND = 16


def _default_threads() -> int:
    # Two servers share the machine; more threads than half the cores made
    # generation collapse (6-12 tok/s vs 32-49 tok/s measured on 2 cores).
    return max(1, (os.cpu_count() or 2) // 2)


class InferenceSettings(ServiceSettings):
    """One role's server. Env names are ``<ROLE>_<FIELD>``, e.g. ``CHAT_N_GPU_LAYERS``."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="CHAT_")

    role: Role = Role.CHAT
    host: str = "127.0.0.1"
    port: int = 0  # 0: the role's default port
    model_path: Path | None = None  # None: the role's default model (inference.model)
    model_alias: str | None = None  # extra model name accepted besides the role
    engine: EngineKind = EngineKind.LLAMA_CPP
    n_gpu_layers: int = 0
    ctx_size: int = Field(default=4096, ge=64)  # per sequence
    n_threads: int = Field(default_factory=_default_threads, ge=1)
    n_batch: int = Field(default=512, ge=16)
    # Sequences decoded together. 4: on 2 cores the batched step is memory-bound, so four
    # streams cost little more per step than one (aggregate tok/s ~1.3x at 4, ~1.4x at 8),
    # while each slot reserves CTX_SIZE of KV cache; more slots only lengthen every step.
    parallel: int = Field(default=4, ge=1, le=64)
    max_queue: int = Field(default=16, ge=0)
    chat_format: str = "auto"  # auto: the GGUF's template, else gemma
    max_tokens_default: int = Field(default=512, ge=1)
    max_prompt_chars: int = Field(default=0, ge=0)  # 0: 16 x CTX_SIZE
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    adapter_dir: Path | None = None  # None: $P2_HOME/adapters
    # The llama-server binary for the llama-server engine; unset: PATH, then P2's build.
    llama_server_bin: Path | None = Field(
        default=None, validation_alias=AliasChoices("LLAMA_SERVER_BIN")
    )

    @classmethod
    def for_role(cls, role: Role | str, **overrides: Any) -> InferenceSettings:
        """One role's settings from ``<ROLE>_*`` env, ``overrides`` (field names) on top."""
        role = Role(role) if isinstance(role, str) else role
        prefix = f"{role.value.upper()}_"
        settings = cls(_env_prefix=prefix, **given(**overrides))
        settings.role = role
        if settings.port == 0:
            settings.port = DEFAULT_PORTS[role]
        return settings

    @property
    def slots(self) -> int:
        return self.parallel

    @property
    def prompt_chars_limit(self) -> int:
        return self.max_prompt_chars or CHARS_PER_TOKEN_BOUND * self.ctx_size

    def env_name(self, field: str) -> str:
        """The variable that sets ``field`` for this role, for messages: ``CHAT_CTX_SIZE``."""
        return f"{self.role.value.upper()}_{field.upper()}"
