"""What ``p2 up`` reads from the environment: ports, the routing config, keys, probe tuning.

A plain snapshot of the environment (so tests can pass their own mapping);
the services read the rest of their variables themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORTS = {"gateway": 8000, "chat": 8001, "rag": 8002, "embedding": 8003, "code": 8004}


def _keys(value: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in value.split(",") if k.strip())


@dataclass(frozen=True)
class StackSettings:
    ports: Mapping[str, int]
    gateway_config: Path | None = None  # GATEWAY_CONFIG: an operator's own routing, used as is
    api_keys: tuple[str, ...] = ()  # P2_API_KEYS
    rag_gateway_api_key: str | None = None  # RAG_GATEWAY_API_KEY
    rag_prompt_style: str | None = None  # RAG_PROMPT_STYLE
    chat_format: str = "auto"  # CHAT_CHAT_FORMAT
    chat_model_path: Path | None = None  # CHAT_MODEL_PATH
    supervisor_metrics_port: int = 8009  # P2_SUPERVISOR_METRICS_PORT; 0: off
    health: Mapping[str, str] = field(default_factory=dict)  # P2_HEALTH_*, P2_<SVC>_HEALTH_*

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        env = os.environ if environ is None else environ
        ports = {
            name: int(env.get(f"{name.upper()}_PORT") or p) for name, p in DEFAULT_PORTS.items()
        }
        return cls(
            ports=ports,
            gateway_config=Path(env["GATEWAY_CONFIG"]) if env.get("GATEWAY_CONFIG") else None,
            api_keys=_keys(env.get("P2_API_KEYS", "")),
            rag_gateway_api_key=env.get("RAG_GATEWAY_API_KEY") or None,
            rag_prompt_style=env.get("RAG_PROMPT_STYLE") or None,
            chat_format=env.get("CHAT_CHAT_FORMAT") or "auto",
            chat_model_path=Path(env["CHAT_MODEL_PATH"]) if env.get("CHAT_MODEL_PATH") else None,
            supervisor_metrics_port=int(env.get("P2_SUPERVISOR_METRICS_PORT", "8009").strip() or 0),
            health={k: v for k, v in env.items() if k.startswith("P2_") and "HEALTH_" in k},
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"
