"""Gateway settings: environment variables override the LiteLLM-format config file.

Every variable is documented in ``docs/gateway.md``. Names without the ``P2_``
prefix (``LLM_REQUEST_TIMEOUT``, ``EMBEDDING_URL``) are the ones the
operators' guide uses. API keys (``P2_API_KEYS``...) are ``p2.core.keys.KeySettings``
and the log level (``P2_LOG_LEVEL``) is ``p2.core.settings.CoreSettings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings
from p2.core.shipped import shipped_file

DEFAULT_CONFIG = Path("config/litellm.yaml")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class GatewaySettings(ServiceSettings):
    """Where the gateway listens, what it forwards to and how fast it gives up."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field("127.0.0.1", validation_alias=_env("GATEWAY_HOST"))
    port: int = Field(8000, validation_alias=_env("GATEWAY_PORT"))
    config: Path = Field(DEFAULT_CONFIG, validation_alias=_env("GATEWAY_CONFIG"))

    # Timeouts (seconds). None means: take router_settings.timeout from the config.
    request_timeout: float | None = Field(None, gt=0, validation_alias=_env("LLM_REQUEST_TIMEOUT"))
    first_byte_timeout: float = Field(2.0, gt=0, validation_alias=_env("LLM_FIRST_BYTE_TIMEOUT"))
    connect_timeout: float = Field(2.0, gt=0, validation_alias=_env("LLM_CONNECT_TIMEOUT"))
    stream_idle_timeout: float = Field(30.0, gt=0, validation_alias=_env("LLM_STREAM_IDLE_TIMEOUT"))

    # Active health checks.
    probe_interval: float = Field(0.5, gt=0, validation_alias=_env("GATEWAY_PROBE_INTERVAL"))
    probe_timeout: float = Field(0.5, gt=0, validation_alias=_env("GATEWAY_PROBE_TIMEOUT"))
    # Failed checks in a row that eject a backend even while its streams still flow.
    probe_failures: int = Field(3, ge=1, validation_alias=_env("GATEWAY_PROBE_FAILURES"))

    # Limits and security.
    max_body_bytes: int = Field(
        4 * 1024 * 1024, gt=0, validation_alias=_env("GATEWAY_MAX_BODY_BYTES")
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, gt=0, validation_alias=_env("GATEWAY_MAX_UPLOAD_BYTES")
    )
    open_paths: str = Field(
        "/health,/health/ready,/health/liveliness,/health/liveness,/health/readiness,"
        "/metrics,/openapi.json",
        validation_alias=_env("GATEWAY_OPEN_PATHS"),
    )
    # Config keys P2 does not honour and whose omission changes routing or security: warn
    # instead of refusing to start.
    lenient_config: bool = Field(False, validation_alias=_env("P2_LENIENT_CONFIG"))

    # Several processes on one port; cooldowns shared through Redis (else per instance).
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("GATEWAY_WORKERS"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))

    embedding_url: str | None = Field(None, validation_alias=_env("EMBEDDING_URL"))
    rag_url: str | None = Field(None, validation_alias=_env("RAG_URL"))
    jobs_url: str | None = Field(None, validation_alias=_env("JOBS_URL"))
    http_metrics: Literal["lean", "off"] = Field(
        "lean", validation_alias=_env("GATEWAY_HTTP_METRICS")
    )

    @field_validator("embedding_url", "rag_url", "jobs_url", "redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def config_path(self) -> Path:
        """The config file; the default falls back to the shipped one when run from elsewhere."""
        path = self.config.expanduser()
        if path == DEFAULT_CONFIG and not path.exists():
            return shipped_file("litellm.yaml")
        return path

    def open_path_list(self) -> tuple[str, ...]:
        """``GATEWAY_OPEN_PATHS``: the paths that need no key."""
        return tuple(p.strip() for p in self.open_paths.split(",") if p.strip())
