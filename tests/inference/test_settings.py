"""Which environment variables move an inference server, and which do not."""

from __future__ import annotations

import pytest

from inference.settings import EngineKind, InferenceSettings, Role


@pytest.fixture(autouse=True)
def no_role_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "MODEL_PATH", "ENGINE"):
        monkeypatch.delenv(f"CHAT_{name}", raising=False)
        monkeypatch.delenv(f"CODE_{name}", raising=False)


def test_stray_bare_names_in_the_environment_move_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("MODEL_PATH", "/elsewhere/model.gguf")
    monkeypatch.setenv("ENGINE", "llama-server")
    for role, port in ((Role.CHAT, 8001), (Role.CODE, 8004)):
        settings = InferenceSettings.for_role(role)
        assert (settings.host, settings.port) == ("127.0.0.1", port)
        assert settings.model_path is None and settings.engine is EngineKind.LLAMA_CPP


def test_each_role_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE_PORT", "9104")
    monkeypatch.setenv("CODE_HOST", "0.0.0.0")
    code = InferenceSettings.for_role("code")
    assert (code.role, code.host, code.port) == (Role.CODE, "0.0.0.0", 9104)
    chat = InferenceSettings.for_role("chat", port=9101)  # an option wins over the env
    assert (chat.host, chat.port) == ("127.0.0.1", 9101)
