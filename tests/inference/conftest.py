"""Inference fixtures: one tiny-model server per engine, shared by the contract tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.build import find_llama_server
from inference.settings import InferenceSettings
from tests.conftest import RunningServer, start_inference, stop

ENGINES = ["llama-cpp", "llama-server"]


def require_engine(engine: str) -> None:
    configured = InferenceSettings().llama_server_bin
    if engine == "llama-server" and find_llama_server(configured) is None:
        if os.environ.get("CI"):
            pytest.fail("llama-server binary missing in CI: `make test` should have built it")
        pytest.skip("llama-server not built (run `p2 build llama-server`)")


@pytest.fixture(scope="session", params=ENGINES)
def tiny_server(
    request: pytest.FixtureRequest, tiny_gguf: Path, p2_home: Path
) -> Iterator[RunningServer]:
    require_engine(request.param)
    server = start_inference(
        p2_home, model=tiny_gguf, engine=request.param, env={"CHAT_CTX_SIZE": "512"}
    )
    yield server
    stop(server)
