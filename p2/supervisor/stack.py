"""The P2 stack as ``p2 up`` runs it on one machine.

embedding, inference-chat and inference-code start together; the gateway
waits for all three to be healthy; rag waits for the gateway and embedding,
as compose's ``depends_on: condition: service_healthy`` would.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping

from inference.settings import InferenceSettings, Role
from p2.core.settings import CoreSettings
from p2.supervisor.spec import Probe, ServiceSpec

DEFAULT_PORTS = {"gateway": 8000, "rag": 8002, "embedding": 8003}


def _available(package: str) -> bool:
    """Services join the stack as they land: a package without ``commands`` is skipped."""
    return importlib.util.find_spec(package) is not None and (
        importlib.util.find_spec(f"{package}.commands") is not None
    )


def default_stack(core: CoreSettings, env: Mapping[str, str] | None = None) -> list[ServiceSpec]:
    env = os.environ if env is None else env
    child_env = {"P2_HOME": str(core.home), "HF_HUB_OFFLINE": "1"}
    p2 = (sys.executable, "-m", "p2", "serve")

    def port(name: str) -> int:
        return int(env.get(f"{name.upper()}_PORT", DEFAULT_PORTS[name]))

    def url(name: str) -> str:
        return f"http://127.0.0.1:{port(name)}"

    def spec(
        name: str,
        argv: tuple[str, ...],
        port_: int,
        deps: tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
    ) -> ServiceSpec:
        return ServiceSpec(
            name,
            argv,
            port_,
            depends_on=deps,
            env={**child_env, **(extra or {})},
            probe=Probe.from_env(name, env),
        )

    specs: list[ServiceSpec] = []
    has_embedding = _available("embedding")
    if has_embedding:
        specs.append(spec("embedding", (*p2, "embedding"), port("embedding")))
    for role in Role:
        argv = (*p2, "inference", "--role", role.value)
        specs.append(spec(f"inference-{role.value}", argv, InferenceSettings.for_role(role).port))
    if not _available("gateway"):
        return specs
    has_rag = _available("rag")
    embedding_dep = ("embedding",) if has_embedding else ()
    wiring = {"EMBEDDING_URL": url("embedding")} if has_embedding else {}
    if has_rag:
        wiring["RAG_URL"] = url("rag")
    gateway_deps = ("inference-chat", "inference-code", *embedding_dep)
    specs.append(spec("gateway", (*p2, "gateway"), port("gateway"), gateway_deps, wiring))
    if has_rag:
        rag_env = {"RAG_GATEWAY_URL": url("gateway"), "EMBEDDING_URL": url("embedding")}
        keys = [k.strip() for k in env.get("P2_API_KEYS", "").split(",") if k.strip()]
        if keys and not env.get("RAG_GATEWAY_API_KEY"):
            rag_env["RAG_GATEWAY_API_KEY"] = keys[0]  # RAG calls the gateway as a client
        specs.append(spec("rag", (*p2, "rag"), port("rag"), ("gateway", *embedding_dep), rag_env))
    return specs
