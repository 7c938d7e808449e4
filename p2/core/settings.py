"""Settings shared by every service, and the base every service's settings class extends.

Environment variables are read only here and in the services' ``settings``
modules. A service is moved only by its own prefixed names (``GATEWAY_PORT``)
or the documented shared ones (``EMBEDDING_URL``): never by a bare field name,
so a stray ``PORT`` or ``HOST`` in the environment moves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def given(**values: Any) -> dict[str, Any]:
    """The options a user actually gave, as settings overrides (None: not given)."""
    return {name: value for name, value in values.items() if value is not None}


class ServiceSettings(BaseSettings):
    """Base of every settings class: env names only, overrides by field name via ``build``.

    Subclasses name their variables with ``env_prefix`` or with a
    ``validation_alias``; pydantic-settings would also read the bare field name
    if ``populate_by_name`` were set, which is why it never is.
    """

    model_config = SettingsConfigDict(extra="ignore")

    @classmethod
    def build(cls, **overrides: Any) -> Self:
        """The environment's settings with ``overrides`` (field names; None: not given) on top."""
        values: dict[str, Any] = {}
        for name, value in given(**overrides).items():
            field = cls.model_fields.get(name)
            if field is None:
                raise TypeError(f"{cls.__name__} has no setting {name!r}")
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                values[str(alias.choices[0])] = value
            elif isinstance(alias, str):
                values[alias] = value
            else:
                values[name] = value
        return cls(**values)


class CoreSettings(ServiceSettings):
    """``P2_HOME`` holds models, data, logs and pids; ``P2_LOG_LEVEL`` sets verbosity."""

    model_config = SettingsConfigDict(env_prefix="P2_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".p2")
    log_level: str = "info"
    api_key: str | None = Field(default=None, repr=False)  # the key P2's own client commands send
    allow_open: bool = False  # P2_ALLOW_OPEN: serve a non-loopback address without keys

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


S = TypeVar("S", bound=ServiceSettings)

HF_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def use_local_models_only() -> None:
    """Keep Hugging Face libraries off the network (set before they are imported).

    P2's models are local directories; a hub lookup would hang for a minute and a
    half before failing on a machine without internet. Operators' values win.
    """
    for name, value in HF_OFFLINE.items():
        os.environ.setdefault(name, value)


class SettingsError(ValueError):
    """Settings from the environment or the command line are invalid; the message says which."""


def load_settings(build: Callable[..., S], **overrides: Any) -> S:
    """``build(**overrides)`` (a settings class's ``build``), with validation errors turned
    into one readable message for the command line."""
    try:
        return build(**given(**overrides))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid {exc.title}: {problems}") from None
    except ValueError as exc:  # a value no field accepts, e.g. an unknown role
        raise SettingsError(str(exc)) from None
