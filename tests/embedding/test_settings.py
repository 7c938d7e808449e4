"""Which environment variables move the embedding service, and which do not."""

from __future__ import annotations

import pytest

from embedding.settings import Backend, EmbeddingSettings


@pytest.fixture(autouse=True)
def no_embedding_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "MODEL", "BACKEND", "MAX_BATCH", "TRUNCATE"):
        monkeypatch.delenv(f"EMBEDDING_{name}", raising=False)


def test_settings_come_from_embedding_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_PORT", "9103")
    monkeypatch.setenv("EMBEDDING_BACKEND", "onnx")
    monkeypatch.setenv("EMBEDDING_MAX_BATCH", "8")
    monkeypatch.setenv("EMBEDDING_TRUNCATE", "false")
    settings = EmbeddingSettings.build()
    assert settings.port == 9103 and settings.backend is Backend.ONNX
    assert settings.max_batch == 8 and settings.truncate is False
    assert EmbeddingSettings.build(port=1).port == 1  # an option wins over the env


def test_default_port_and_backend() -> None:
    settings = EmbeddingSettings.build()
    assert settings.port == 8003 and settings.backend is Backend.ONNX_INT8


def test_stray_bare_names_in_the_environment_move_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("MODEL", "/elsewhere/model")
    monkeypatch.setenv("BACKEND", "torch")
    settings = EmbeddingSettings.build()
    assert (settings.host, settings.port) == ("127.0.0.1", 8003)
    assert settings.model is None and settings.backend is Backend.ONNX_INT8
