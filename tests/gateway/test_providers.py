"""Backends beyond local plain HTTP, against real local servers: TLS with a private CA,
provider prefixes (default base and key variable), Azure's key header and api-version,
and the three probe modes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import GatewayConfig, parse
from testkit.mock_openai import MockConfig, ThreadedMock
from testkit.mock_providers import TlsFiles, tls_files
from tests.gateway.conftest import ADMIN, AUTH, RunningGateway, running_gateway

PATH = "/chat/completions"


def ask(gateway: RunningGateway, model: str, timeout: float = 10) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    return httpx.post(f"{gateway.base}{PATH}", json=body, headers=AUTH, timeout=timeout)


def litellm(*entries: dict[str, Any], environ: dict[str, str] | None = None) -> GatewayConfig:
    return parse({"model_list": list(entries)}, environ=environ or {})


def states(gateway: RunningGateway, group: str) -> list[str]:
    ready = httpx.get(f"{gateway.url}/health/ready", headers=ADMIN).json()
    return [str(b["state"]) for b in ready["backends"][group]]


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_mock(tls: TlsFiles) -> Iterator[ThreadedMock]:
    mock = ThreadedMock(MockConfig(model="chat"), tls=tls.server_context()).start()
    try:
        yield mock
    finally:
        mock.close()


def test_https_backend_verified_with_a_custom_ca(https_mock: ThreadedMock, tls: TlsFiles) -> None:
    assert https_mock.url.startswith("https://")
    config = litellm(
        {
            "model_name": "chat",
            "litellm_params": {
                "model": "openai/chat",
                "api_base": https_mock.url,
                "ssl_verify": str(tls.ca),
            },
        }
    )
    with running_gateway(config) as gateway:
        response = ask(gateway, "chat")
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "chat"
        assert https_mock.config.counts["/v1/chat/completions"] == 1
        wait_for(lambda: states(gateway, "chat") == ["up"])  # its /health, over TLS


def test_https_backend_with_an_unknown_ca_is_refused(https_mock: ThreadedMock) -> None:
    config = litellm(
        {"model_name": "chat", "litellm_params": {"model": "chat", "api_base": https_mock.url}}
    )
    with running_gateway(config) as gateway:
        response = ask(gateway, "chat")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "no_backend_available"
        assert https_mock.config.counts["/v1/chat/completions"] == 0


def test_provider_prefix_brings_base_and_key_variables() -> None:
    mock = ThreadedMock(MockConfig(model="llama-3.1-8b", flavour="cloud", key="sk-groq")).start()
    try:
        environ = {"GROQ_API_BASE": mock.url, "GROQ_API_KEY": "sk-groq"}
        config = litellm(
            {"model_name": "fast", "litellm_params": {"model": "groq/llama-3.1-8b"}},
            environ=environ,
        )
        spec = config.deployments[0]
        assert (spec.api_base, spec.api_key, spec.probe.value) == (mock.url, "sk-groq", "passive")
        with running_gateway(config) as gateway:
            response = ask(gateway, "fast")
            assert response.status_code == 200, response.text
            assert response.json()["model"] == "fast"
            assert mock.config.models == ["llama-3.1-8b"]
            assert mock.config.headers[b"authorization"] == b"Bearer sk-groq"
            assert mock.config.counts["/health"] == 0  # a cloud API is not probed
            assert states(gateway, "fast") == ["up"]
    finally:
        mock.close()


def test_public_default_base_without_env() -> None:
    config = litellm(
        {"model_name": "g", "litellm_params": {"model": "groq/llama"}},
        environ={"GROQ_API_KEY": "k"},
    )
    assert config.deployments[0].api_base == "https://api.groq.com/openai/v1"
    assert config.deployments[0].api_key == "k"


def test_azure_api_key_header_and_api_version() -> None:
    mock = ThreadedMock(MockConfig(flavour="azure", key="az-secret")).start()
    try:
        config = litellm(
            {
                "model_name": "gpt",
                "litellm_params": {
                    "model": "azure/my-deployment",
                    "api_base": mock.root,
                    "api_key": "os.environ/AZ_KEY",
                    "api_version": "2024-06-01",
                },
            },
            environ={"AZ_KEY": "az-secret"},
        )
        with running_gateway(config) as gateway:
            response = ask(gateway, "gpt")
            assert response.status_code == 200, response.text
            assert mock.config.models == ["my-deployment"]  # named in the path
            assert mock.config.headers[b"api-key"] == b"az-secret"
            assert b"authorization" not in mock.config.headers
            deployment = gateway.app.state.registry.groups["gpt"][0]
            assert deployment.paths[PATH] == (
                "/openai/deployments/my-deployment/chat/completions?api-version=2024-06-01"
            )
    finally:
        mock.close()


def test_wrong_key_moves_on_to_the_next_deployment() -> None:
    cloud = ThreadedMock(MockConfig(flavour="cloud", key="right")).start()
    local = ThreadedMock(MockConfig()).start()
    try:
        config = litellm(
            {
                "model_name": "chat",
                "litellm_params": {"model": "openai/m", "api_base": cloud.url, "api_key": "wrong"},
                "model_info": {"p2_probe": "passive"},
            },
            {
                "model_name": "chat",
                "litellm_params": {"model": "m", "api_base": local.url, "order": 2},
            },
        )
        with running_gateway(config) as gateway:
            assert ask(gateway, "chat").status_code == 200
            assert cloud.config.counts["401"] == 1
            assert local.config.counts["/v1/chat/completions"] == 1
    finally:
        cloud.close()
        local.close()


def test_passive_backend_without_health_serves_a_long_answer() -> None:
    """No /health and slower than the first-byte timeout: neither ejected nor killed."""
    mock = ThreadedMock(MockConfig(flavour="cloud", latency=1.5)).start()
    try:
        config = litellm(
            {
                "model_name": "slow",
                "litellm_params": {"model": "openai/m", "api_base": mock.url},
                "model_info": {"p2_probe": "passive"},
            }
        )
        with running_gateway(config, first_byte_timeout=0.3) as gateway:
            time.sleep(0.5)  # several probe intervals
            assert states(gateway, "slow") == ["up"]
            response = ask(gateway, "slow")
            assert response.status_code == 200, response.text
            assert mock.config.counts["/health"] == 0
            assert states(gateway, "slow") == ["up"]
    finally:
        mock.close()


def test_health_probe_on_a_backend_without_health_ejects_it() -> None:
    """The contrast: the same backend probed on /health is out of rotation."""
    mock = ThreadedMock(MockConfig(flavour="cloud")).start()
    try:
        config = litellm(
            {
                "model_name": "m",
                "litellm_params": {"model": "openai/m", "api_base": mock.url},
                "model_info": {"p2_probe": "health"},
            }
        )
        with running_gateway(config) as gateway:
            wait_for(lambda: states(gateway, "m") == ["down"])
            ready = httpx.get(f"{gateway.url}/health/readiness")
            assert ready.status_code == 503
    finally:
        mock.close()


def test_ollama_is_probed_on_its_models_list(tmp_path: Path) -> None:
    mock = ThreadedMock(MockConfig(model="llama3", flavour="ollama", latency=1.0)).start()
    try:
        config = litellm(
            {"model_name": "local", "litellm_params": {"model": "ollama/llama3"}},
            environ={"OLLAMA_API_BASE": mock.root},
        )
        assert config.deployments[0].api_base == mock.url  # /v1 appended
        with running_gateway(config, first_byte_timeout=0.3) as gateway:
            wait_for(lambda: states(gateway, "local") == ["up"])
            assert mock.config.counts["/v1/models"] >= 1
            response = ask(gateway, "local")  # slower than the first-byte timeout
            assert response.status_code == 200, response.text
            assert response.json()["model"] == "local"
            mock.stop()
            wait_for(lambda: states(gateway, "local") == ["down"])
    finally:
        mock.close()


@pytest.mark.parametrize(
    ("params", "key", "probe"),
    [
        ({"model": "openai/m"}, "sk-openai", "health"),  # OPENAI_BASE_URL: LiteLLM's key too
        ({"model": "openai/m", "api_base": "http://127.0.0.1:1/v1"}, None, "health"),
        ({"model": "hosted_vllm/m", "api_base": "http://127.0.0.1:1/v1"}, "sk-vllm", "health"),
        ({"model": "mistral/m"}, "sk-mistral", "passive"),
    ],
)
def test_key_variables_and_probe_defaults(
    params: dict[str, str], key: str | None, probe: str
) -> None:
    environ = {
        "OPENAI_BASE_URL": "http://127.0.0.1:2/v1",
        "OPENAI_API_KEY": "sk-openai",
        "HOSTED_VLLM_API_KEY": "sk-vllm",
        "MISTRAL_API_KEY": "sk-mistral",
    }
    spec = litellm({"model_name": "g", "litellm_params": params}, environ=environ).deployments[0]
    assert (spec.api_key, spec.probe.value) == (key, probe)
