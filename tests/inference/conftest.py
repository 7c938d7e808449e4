"""Inference fixtures: one tiny-model server per engine, shared by the contract tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.build import find_llama_server
from inference.settings import InferenceSettings
from tests.conftest import RunningServer, start_inference, stop
from tests.inference.lora import install_adapter

# The llama-server engine's runs carry the ``llama_server`` marker (`-m "not llama_server"`).
ENGINES = ["llama-cpp", pytest.param("llama-server", marks=pytest.mark.llama_server)]
ADAPTER_ID = "tiny-a1"


def require_engine(engine: str) -> None:
    configured = InferenceSettings().llama_server_bin
    if engine == "llama-server" and find_llama_server(configured) is None:
        if os.environ.get("CI"):
            pytest.fail("llama-server binary missing in CI: `make test` should have built it")
        pytest.skip("llama-server not built (run `make llama-server`)")


@pytest.fixture(scope="session")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One adapter for the tiny model, there before the servers start."""
    root = tmp_path_factory.mktemp("adapters")
    install_adapter(root, ADAPTER_ID, "chat", "demo")
    return root


@pytest.fixture(scope="session", params=ENGINES)
def tiny_server(
    request: pytest.FixtureRequest, tiny_gguf: Path, p2_home: Path, adapter_dir: Path
) -> Iterator[RunningServer]:
    require_engine(request.param)
    env = {"CHAT_CTX_SIZE": "2048", "CHAT_ADAPTER_DIR": str(adapter_dir)}
    server = start_inference(p2_home, model=tiny_gguf, engine=request.param, env=env)
    yield server
    stop(server)
