"""LiteLLM-format routing config (``model_list`` + ``router_settings``) read into typed objects.

Only what the gateway honours is read (``model_list``, ``router_settings``
and ``general_settings.master_key``, an admin key); the rest of a LiteLLM
config is ignored, so one file works for both. ``os.environ/NAME`` values are resolved
from the environment, as LiteLLM does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """The config file is missing, unreadable or not a usable LiteLLM config."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One ``model_list`` entry: a group name served by one backend."""

    group: str
    model: str
    api_base: str
    api_key: str | None
    order: int
    index: int

    @property
    def name(self) -> str:
        """A stable label for logs and metrics: ``host:port``."""
        base = self.api_base.split("://", 1)[-1]
        return base.split("/", 1)[0]


@dataclass(frozen=True)
class RouterSettings:
    num_retries: int = 0
    timeout: float = 600.0
    allowed_fails: int = 3
    cooldown_time: float = 5.0


@dataclass(frozen=True)
class GatewayConfig:
    deployments: tuple[DeploymentSpec, ...]
    router: RouterSettings = field(default_factory=RouterSettings)
    master_key: str | None = field(default=None, repr=False)  # general_settings: an admin key

    def groups(self) -> dict[str, list[DeploymentSpec]]:
        """Deployments per model group, by ascending ``order`` (then file order)."""
        groups: dict[str, list[DeploymentSpec]] = {}
        for spec in self.deployments:
            groups.setdefault(spec.group, []).append(spec)
        for specs in groups.values():
            specs.sort(key=lambda s: (s.order, s.index))
        return groups


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("os.environ/"):
        return os.environ.get(value.removeprefix("os.environ/"))
    return value


def _deployment(entry: Any, index: int) -> DeploymentSpec:
    if not isinstance(entry, dict) or "model_name" not in entry:
        raise ConfigError(f"model_list[{index}] needs a model_name")
    params = entry.get("litellm_params")
    if not isinstance(params, dict):
        raise ConfigError(f"model_list[{index}] needs litellm_params")
    model = str(_resolve(params.get("model")) or "")
    api_base = _resolve(params.get("api_base"))
    if not model or not api_base:
        raise ConfigError(f"model_list[{index}] needs litellm_params.model and api_base")
    provider, _, name = model.partition("/")
    key = _resolve(params.get("api_key"))
    return DeploymentSpec(
        group=str(entry["model_name"]),
        model=name
        if name and provider in ("openai", "hosted_vllm", "text-completion-openai")
        else model,
        api_base=str(api_base).rstrip("/"),
        api_key=str(key) if key not in (None, "", "none") else None,
        order=int(params.get("order", 1)),
        index=index,
    )


def parse(data: Any) -> GatewayConfig:
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise ConfigError("the config has no model_list")
    deployments = tuple(_deployment(e, i) for i, e in enumerate(data["model_list"]))
    if not deployments:
        raise ConfigError("model_list is empty")
    raw = data.get("router_settings") or {}
    if not isinstance(raw, dict):
        raise ConfigError("router_settings must be a mapping")
    defaults = RouterSettings()
    try:
        router = RouterSettings(
            num_retries=int(raw.get("num_retries", defaults.num_retries)),
            timeout=float(raw.get("timeout", defaults.timeout)),
            allowed_fails=int(raw.get("allowed_fails", defaults.allowed_fails)),
            cooldown_time=float(raw.get("cooldown_time", defaults.cooldown_time)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad router_settings: {exc}") from exc
    general = data.get("general_settings") or {}
    if not isinstance(general, dict):
        raise ConfigError("general_settings must be a mapping")
    master_key = _resolve(general.get("master_key"))
    return GatewayConfig(deployments, router, str(master_key) if master_key else None)


def load(path: Path) -> GatewayConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse(data)
