"""Settings of the job API (``JOBS_*``), its workers (``WORKER_*``) and P2's own Redis
(``REDIS_*``); ``DATABASE_URL`` and ``REDIS_URL`` are shared by all of them."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings

DEFAULT_PORT = 8005
DEFAULT_WORKER_PORT = 8010
DEFAULT_REDIS_PORT = 6390  # not 6379: Debian's redis-server package starts its own there
QUEUE = "p2-jobs"


class RedisSettings(ServiceSettings):
    """P2's own Redis under ``p2 up`` (when ``REDIS_URL`` is not set): ``REDIS_PORT``,
    ``REDIS_SERVER`` (the binary)."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", extra="ignore")

    url: str | None = None  # REDIS_URL: a production Redis; P2 then starts none
    port: int = Field(default=DEFAULT_REDIS_PORT, ge=1, le=65535)
    server: str = "redis-server"

    @property
    def broker_url(self) -> str:
        return self.url or f"redis://127.0.0.1:{self.port}/0"


class JobsSettings(ServiceSettings):
    """Env names are ``JOBS_<FIELD>``, plus ``DATABASE_URL`` and ``REDIS_URL``."""

    model_config = SettingsConfigDict(env_prefix="JOBS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL")
    )  # None: SQLite at $P2_HOME/jobs.db
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    artifact_dir: Path | None = None  # None: $P2_HOME/files
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    max_inline_bytes: int = Field(default=256 * 1024, ge=1024)  # JSON input/result; more: files
    sync_timeout: float = Field(default=30.0, gt=0)  # POST /v1/segmentations waits this long
    test_models: bool = False  # JOBS_TEST_MODELS=1 registers the "echo" and "spin" models
    max_attempts: int = Field(default=3, ge=1)  # worker losses before a job fails
    visibility_timeout: float = Field(default=12 * 3600.0, gt=0)  # above the longest job
    lost_after: float = Field(default=180.0, gt=0)  # a running job silent this long is re-queued
    redispatch_after: float = Field(default=30.0, gt=0)  # queued while a worker idles: resent
    sweep_interval: float = Field(default=2.0, gt=0)
    queue: str = QUEUE

    @property
    def broker_url(self) -> str:
        return self.redis_url or RedisSettings().broker_url

    def database(self, home: Path) -> str:
        return self.database_url or f"sqlite:///{home / 'jobs.db'}"

    def artifacts(self, home: Path) -> Path:
        return self.artifact_dir or home / "files"


class WorkerSettings(ServiceSettings):
    """Env names are ``WORKER_<FIELD>``: one worker process, and how many ``p2 up`` starts."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_WORKER_PORT, ge=0, le=65535)  # liveness /health
    name: str | None = None  # None: <port>@<hostname> (a Celery node name)
    device: str = "auto"  # auto: cuda when CUDA_VISIBLE_DEVICES names a GPU, else cpu
    stall_timeout: float = Field(default=120.0, gt=0)  # busy without a heartbeat: wedged
    heartbeat_interval: float = Field(default=5.0, gt=0)  # how often the worker reports itself
    max_tasks_per_child: int = Field(default=0, ge=0)  # 0: keep the loaded model between jobs
    events: bool = False  # Celery task events (Flower watches them)
    gpus: str = "auto"  # WORKER_GPUS: auto (nvidia-smi), none, or 0,1 / MIG UUIDs
    cpu_workers: int = Field(default=1, ge=0)  # workers when there is no GPU

    @property
    def worker_name(self) -> str:
        return self.name or f"{self.port}@{socket.gethostname()}"
