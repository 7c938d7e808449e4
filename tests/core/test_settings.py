"""Settings: documented names move a service, bare field names never do."""

from __future__ import annotations

import pytest

from embedding.settings import EmbeddingSettings
from gateway.settings import GatewaySettings
from inference.settings import InferenceSettings, Role
from p2.core.commands import Option, main
from p2.core.settings import CoreSettings, SettingsError, load_settings
from rag.settings import RagSettings

STRAY = {"HOST": "0.0.0.0", "PORT": "5555", "HOME": "/nonexistent", "LOG_LEVEL": "debug"}


@pytest.fixture
def stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STRAY.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("stray_env")
def test_a_stray_host_or_port_moves_no_service() -> None:
    bound = [
        (s.host, s.port)
        for s in (
            GatewaySettings(),
            EmbeddingSettings(),
            RagSettings(),
            InferenceSettings.for_role(Role.CHAT),
            InferenceSettings.for_role(Role.CODE),
        )
    ]
    assert bound == [
        ("127.0.0.1", 8000),
        ("127.0.0.1", 8003),
        ("127.0.0.1", 8002),
        ("127.0.0.1", 8001),
        ("127.0.0.1", 8004),
    ]
    assert CoreSettings().log_level == "info"


def test_prefixed_and_documented_names_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    monkeypatch.setenv("EMBEDDING_PORT", "9103")
    monkeypatch.setenv("RAG_PORT", "9102")
    monkeypatch.setenv("CODE_PORT", "9104")
    monkeypatch.setenv("LLM_REQUEST_TIMEOUT", "42")
    assert GatewaySettings().port == 9100 and GatewaySettings().request_timeout == 42
    assert EmbeddingSettings().port == 9103
    assert RagSettings().port == 9102
    assert InferenceSettings.for_role("code").port == 9104


def test_overrides_by_field_name_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    assert GatewaySettings.build(port=9200, host=None).port == 9200
    assert RagSettings.build(port=9202).port == 9202
    with pytest.raises(TypeError, match="no setting 'colour'"):
        GatewaySettings.build(colour="red")


def test_bad_values_are_one_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_MAX_BATCH", "many")
    with pytest.raises(SettingsError, match="max_batch"):
        load_settings(EmbeddingSettings.build)
    with pytest.raises(SettingsError, match="'wizard' is not a valid Role"):
        load_settings(lambda **kw: InferenceSettings.for_role("wizard", **kw))


def test_a_service_command_line_exits_2_on_bad_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def serve(port: int | None = None) -> None:
        raise SettingsError(f"invalid port {port}")

    with pytest.raises(SystemExit) as exited:
        main("python -m demo", serve, [Option("port", "port", int)], ["--port", "7"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: invalid port 7"
