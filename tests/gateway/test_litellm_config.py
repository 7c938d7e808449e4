"""A LiteLLM user's config: never silently dropped keys, ``p2 check-config``, LiteLLM's health
paths, and a config with cloud fallbacks (local mock providers over TLS) that runs."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.commands import check_config
from gateway.config import ConfigError, load, parse
from gateway.config_keys import table_rows
from testkit.mock_openai import MockConfig, ThreadedMock
from testkit.mock_providers import TlsFiles, tls_files
from tests.gateway.conftest import AUTH, running_gateway

ROOT = Path(__file__).resolve().parents[2]


def one_group(**extra: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "chat", "litellm_params": {"model": "chat", "api_base": "http://h/v1"}}
        ],
        **extra,
    }


def test_ignored_keys_are_named_in_one_warning_at_start(
    mocks: tuple[ThreadedMock, ThreadedMock], caplog: pytest.LogCaptureFixture
) -> None:
    data = one_group(
        router_settings={"cache_responses": True, "made_up_key": 1},
        litellm_settings={"drop_params": True},
        mcp_servers={},
    )
    data["model_list"][0]["litellm_params"].update(api_base=mocks[0].url, max_retries=3)
    config = parse(data, environ={})
    caplog.set_level(logging.WARNING, logger="p2.gateway")
    with running_gateway(config) as gateway:
        assert httpx.get(f"{gateway.url}/health").status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "does not honour" in r.getMessage()]
    assert len(warnings) == 1
    for key in (
        "router_settings.cache_responses",
        "router_settings.made_up_key",
        "litellm_settings.drop_params",
        "config.mcp_servers",
        "model_list[0].litellm_params.max_retries",
    ):
        assert key in warnings[0]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"general_settings": {"database_url": "postgres://x"}}, "general_settings.database_url"),
        (
            {"router_settings": {"enable_tag_filtering": True}},
            "router_settings.enable_tag_filtering",
        ),
        ({"litellm_settings": {"callbacks": ["x"]}}, "litellm_settings.callbacks"),
        ({"credential_list": []}, "config.credential_list"),
    ],
)
def test_routing_or_security_keys_are_refused_unless_lenient(
    extra: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)) as refused:
        parse(one_group(**extra), environ={})
    assert "P2_LENIENT_CONFIG=1" in str(refused.value)
    warning = parse(one_group(**extra), lenient=True, environ={}).audit.warning()
    assert warning is not None and named in warning


def test_lenient_config_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocks: tuple[ThreadedMock, ThreadedMock]
) -> None:
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    data = one_group(general_settings={"allowed_ips": ["10.0.0.1"]})
    data["model_list"][0]["litellm_params"]["api_base"] = mocks[0].url
    path = tmp_path / "litellm.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="allowed_ips"):
        create_app(GatewaySettings.build(config=path))
    monkeypatch.setenv("P2_LENIENT_CONFIG", "1")
    assert create_app(GatewaySettings.build(config=path)).state.registry.groups["chat"]


def test_unknown_strategy_and_dangling_fallback_are_errors() -> None:
    with pytest.raises(ConfigError, match="cost-based-routing"):
        parse(one_group(router_settings={"routing_strategy": "cost-based-routing"}), environ={})
    with pytest.raises(ConfigError, match=re.escape("fallbacks.chat -> nowhere")):
        parse(one_group(router_settings={"fallbacks": [{"chat": ["nowhere"]}]}), environ={})


def test_health_paths_of_litellm(gateway: Any, mocks: tuple[ThreadedMock, ThreadedMock]) -> None:
    for path in ("/health/liveliness", "/health/liveness"):
        response = httpx.get(f"{gateway.url}{path}")  # no key: Kubernetes probes have none
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/readiness")
    assert ready.status_code == 200
    assert ready.json()["models"] == {"chat": "ok", "code": "ok"}
    assert "backends" not in ready.json()
    for mock in mocks:
        mock.stop()
    deadline = 50
    while httpx.get(f"{gateway.url}/health/readiness").status_code != 503 and deadline:
        deadline -= 1
        time.sleep(0.1)
    assert httpx.get(f"{gateway.url}/health/readiness").status_code == 503
    assert httpx.get(f"{gateway.url}/health/liveliness").status_code == 200


def test_check_config_explains_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config(ROOT / "config" / "litellm.yaml") == 0
    out = capsys.readouterr().out
    assert "group chat:" in out and "group code:" in out
    assert "order 1: openai http://127.0.0.1:8001/v1, model 'chat', probe health" in out


def test_check_config_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = tmp_path / "refused.yaml"
    refused.write_text(yaml.safe_dump(one_group(general_settings={"database_url": "x"})))
    monkeypatch.delenv("P2_LENIENT_CONFIG", raising=False)
    assert check_config(refused) == 1
    assert "refused" in capsys.readouterr().out
    monkeypatch.setenv("P2_LENIENT_CONFIG", "1")
    assert check_config(refused) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: 3\n")
    assert check_config(broken) == 2
    assert "no model_list" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def clouds(tls: TlsFiles) -> Iterator[tuple[ThreadedMock, ThreadedMock, ThreadedMock]]:
    local = ThreadedMock(MockConfig(model="chat", mode="error503")).start()
    openai = ThreadedMock(
        MockConfig(model="gpt-4o-mini", flavour="cloud", key="sk-openai"),
        tls=tls.server_context(),
    ).start()
    azure = ThreadedMock(
        MockConfig(flavour="azure", key="az-key"), tls=tls.server_context()
    ).start()
    try:
        yield local, openai, azure
    finally:
        for mock in (local, openai, azure):
            mock.close()


def test_config_with_cloud_fallbacks_over_tls_runs(
    tmp_path: Path,
    tls: TlsFiles,
    clouds: tuple[ThreadedMock, ThreadedMock, ThreadedMock],
    capsys: pytest.CaptureFixture[str],
) -> None:
    local, openai, azure = clouds
    path = tmp_path / "litellm.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "chat",
                        "litellm_params": {"model": "openai/chat", "api_base": local.url},
                    },
                    {
                        "model_name": "gpt-4o-mini",
                        "litellm_params": {"model": "openai/gpt-4o-mini"},
                        "model_info": {"p2_probe": "passive"},
                    },
                    {
                        "model_name": "gpt-4o",
                        "litellm_params": {
                            "model": "azure/gpt4o-eu",
                            "api_base": "os.environ/AZURE_API_BASE",
                            "api_key": "os.environ/AZURE_API_KEY",
                            "api_version": "2024-10-21",
                        },
                    },
                ],
                "router_settings": {"fallbacks": [{"chat": ["gpt-4o-mini", "gpt-4o"]}]},
                "litellm_settings": {"ssl_verify": str(tls.ca)},
                "environment_variables": {
                    "OPENAI_BASE_URL": openai.url,
                    "OPENAI_API_KEY": "sk-openai",
                    "AZURE_API_BASE": azure.root,
                    "AZURE_API_KEY": "az-key",
                },
            }
        )
    )
    assert check_config(path) == 0
    out = capsys.readouterr().out
    assert f"openai {openai.url}, model 'gpt-4o-mini', probe passive, key set, CA {tls.ca}" in out
    assert "azure" in out and "api-version 2024-10-21" in out
    assert "fallbacks: gpt-4o-mini -> gpt-4o" in out
    assert f"http://127.0.0.1:{local.port}/v1, model 'chat', probe health\n" in out
    assert "sk-openai" not in out and "az-key" not in out

    with running_gateway(load(path)) as gateway:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        url = f"{gateway.base}/chat/completions"
        response = httpx.post(url, json=body, headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        assert openai.config.models == ["gpt-4o-mini"]
        openai.config.mode = "error503"
        response = httpx.post(url, json=body, headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        assert azure.config.models == ["gpt4o-eu"]
        assert azure.config.headers[b"api-key"] == b"az-key"


def _doc_rows() -> set[tuple[str, str, str, str]]:
    text = (ROOT / "docs" / "gateway.md").read_text()
    section = text.split("### LiteLLM config keys", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows.add((cells[0].strip("`"), cells[1].strip("`"), cells[2], cells[3]))
    return rows


def test_docs_table_holds_every_key_as_the_audit_treats_it() -> None:
    assert _doc_rows() == set(table_rows())
