"""LoRA adapters per request: named ``ft:<base>:<suffix>:<id>``, from ``<ROLE>_ADAPTER_DIR``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inference import adapters
from testkit.openai_errors import assert_openai_error
from tests.conftest import RunningServer
from tests.inference.conftest import ENGINES, require_engine
from tests.inference.lora import install_adapter

BODY = {"prompt": "the cat is", "max_tokens": 8, "temperature": 0, "ignore_eos": True}


def complete(server: RunningServer, model: str) -> tuple[int, dict[str, object]]:
    with server.client() as client:
        response = client.post("/v1/completions", json={**BODY, "model": model})
    return response.status_code, response.json()


def test_adapter_names_are_parsed_strictly() -> None:
    name = adapters.parse("ft:chat:debian:run-1")
    assert name is not None and (name.base, name.suffix, name.id) == ("chat", "debian", "run-1")
    for bad in ("chat", "ft:chat:x", "ft::x:id", "ft:chat:x:../etc", "ft:chat:x:.hidden"):
        assert adapters.parse(bad) is None


def test_an_adapter_is_checked_against_the_model_before_loading(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    from tests.inference.lora import write_tiny_adapter

    assert adapters.misfit(write_tiny_adapter(tmp_path / "fits.gguf"), tiny_gguf) is None
    narrow = write_tiny_adapter(tmp_path / "narrow.gguf", dim=32)
    assert "shapes do not fit" in str(adapters.misfit(narrow, tiny_gguf))
    assert adapters.misfit(tiny_gguf, tiny_gguf) == "not a LoRA adapter GGUF"


@pytest.mark.parametrize("engine", ENGINES)
def test_adapters_by_engine(
    engine: str, server_factory: Callable[..., RunningServer], tiny_gguf: Path, tmp_path: Path
) -> None:
    require_engine(engine)
    root = tmp_path / "adapters"
    first = install_adapter(root, "first", "chat", "demo", seed=1)
    other_base = install_adapter(root, "for-code", "code", "demo", seed=2)
    (root / "misfit.gguf").write_bytes(b"GGUF" + b"\0" * 60)  # no card: usable by name only
    env = {"CHAT_CTX_SIZE": "512", "CHAT_ADAPTER_DIR": str(root)}
    server = server_factory(model=tiny_gguf, engine=engine, env=env)
    with server.client() as client:
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert first in listed and other_base not in listed

    status, base = complete(server, "chat")
    assert status == 200
    status, tuned = complete(server, first)
    assert status == 200 and tuned["choices"] != base["choices"]  # type: ignore[comparison-overlap]

    with server.client() as client:
        for model, code in ((other_base, 404), ("ft:chat:wrong-suffix:first", 404)):
            response = client.post("/v1/completions", json={**BODY, "model": model})
            assert_openai_error(response, code, param="model")

    late = install_adapter(root, "late", "chat", "demo", seed=3)
    status, answer = complete(server, late)
    with server.client() as client:
        misfit = client.post("/v1/completions", json={**BODY, "model": "ft:chat:x:misfit"})
    if engine == "llama-cpp":  # loaded on first use
        assert status == 200
        assert_openai_error(misfit, 400, param="model", contains="does not fit")
    else:  # llama-server serves the adapters present when it started
        assert status == 400 and answer["error"]["code"] == "adapter_not_loaded"  # type: ignore[index]
        assert_openai_error(misfit, 400, code="adapter_not_loaded")
