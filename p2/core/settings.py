"""Settings shared by every service: where P2 keeps its data, how it logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """``P2_HOME`` holds models, data, logs and pids; ``P2_LOG_LEVEL`` sets verbosity."""

    model_config = SettingsConfigDict(env_prefix="P2_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".p2")
    log_level: str = "info"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def given(**values: Any) -> dict[str, Any]:
    """The command-line options a user actually gave, as settings overrides (None: not given)."""
    return {name: value for name, value in values.items() if value is not None}
