"""``python -m gateway`` as an operator runs it: config file, env overrides, keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from p2.core.keys import KeySettings
from p2.core.process import free_port, spawn, terminate, wait_healthy
from testkit.mock_openai import ThreadedMock

Mocks = tuple[ThreadedMock, ThreadedMock]


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("sk-b\n")
    monkeypatch.setenv("LLM_REQUEST_TIMEOUT", "42")
    monkeypatch.setenv("LLM_FIRST_BYTE_TIMEOUT", "3.5")
    monkeypatch.setenv("GATEWAY_PROBE_INTERVAL", "0.25")
    monkeypatch.setenv("P2_API_KEYS", "sk-a, ")
    monkeypatch.setenv("P2_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("EMBEDDING_URL", "http://127.0.0.1:8002")
    monkeypatch.setenv("GATEWAY_OPEN_PATHS", "/health, /v1/models,")
    settings = GatewaySettings.build(port=9000)
    assert settings.request_timeout == 42 and settings.first_byte_timeout == 3.5
    assert settings.probe_interval == 0.25 and settings.port == 9000
    assert settings.embedding_url == "http://127.0.0.1:8002"
    assert settings.open_path_list() == ("/health", "/v1/models")
    keyring = KeySettings().keyring()
    assert len(keyring) == 2
    assert keyring.caller(b"sk-a") is not None and keyring.caller(b"sk-b") is not None


def test_bare_host_and_port_in_the_environment_move_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "5555")
    monkeypatch.setenv("CONFIG", "/nonexistent.yaml")
    settings = GatewaySettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert str(settings.config) == "config/litellm.yaml"


def test_defaults_find_the_shipped_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert GatewaySettings().config_path().is_file()


def test_python_m_gateway_serves(mocks: Mocks, tmp_path: Path) -> None:
    primary, secondary = mocks
    config = tmp_path / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": "chat",
                        "litellm_params": {
                            "model": "openai/chat",
                            "api_base": primary.url,
                            "order": 1,
                        },
                    },
                    {
                        "model_name": "chat",
                        "litellm_params": {
                            "model": "openai/code",
                            "api_base": secondary.url,
                            "order": 2,
                        },
                    },
                ]
            }
        )
    )
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(port)],
        env={"P2_API_KEYS": "sk-cli"},
        log_path=tmp_path / "gateway.log",
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health/ready", timeout=30, proc=proc)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-cli"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"].startswith("tok0")
    finally:
        terminate(proc, grace=5)
    assert "sk-cli" not in (tmp_path / "gateway.log").read_text()


def test_bad_config_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list: 3\n")
    proc = spawn(
        [sys.executable, "-m", "gateway", "--config", str(bad)], log_path=tmp_path / "out.log"
    )
    assert proc.wait(30) == 2
    out = (tmp_path / "out.log").read_text()
    assert "error: the config has no model_list" in out and "Traceback" not in out
