"""Writing routing configs in LiteLLM's format: what ``p2 up``, the benchmarks and tests generate.

The gateway reads the format (``gateway.config``); everything that writes one
builds its ``model_list`` entries here and writes the file atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from p2.core.files import atomic_write

DEFAULT_ROUTER = {"num_retries": 0, "timeout": 60, "allowed_fails": 3, "cooldown_time": 30}


def deployment(
    group: str, api_base: str, model: str, order: int = 1, api_key: str = "none"
) -> dict[str, Any]:
    """One ``model_list`` entry: ``group`` served by the OpenAI-compatible ``api_base``."""
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": api_base,
            "api_key": api_key,
            "order": order,
        },
    }


def config(
    deployments: Iterable[dict[str, Any]],
    router: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A whole config: ``model_list``, ``router_settings`` and any other top-level sections."""
    return {
        "model_list": list(deployments),
        "router_settings": dict(DEFAULT_ROUTER if router is None else router),
        **sections,
    }


def write_config(path: Path, data: Mapping[str, Any], header: str = "") -> Path:
    """Write ``data`` as YAML (``header`` as leading comment lines), atomically."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    atomic_write(path, comment + yaml.safe_dump(dict(data), sort_keys=False), fsync=False)
    return path
