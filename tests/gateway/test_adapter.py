"""Native providers through LiteLLM's adapters (the optional extra), against a local mock
that speaks Anthropic's Messages API; and the OpenAI-compatible path never imports LiteLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec

import httpx
import pytest

from gateway.config import GatewayConfig, parse
from testkit.mock_openai import MockConfig, ThreadedMock
from tests.gateway.conftest import AUTH, running_gateway

# Not imported here: the gateway imports it itself, with its cost-map fetch off.
pytestmark = pytest.mark.skipif(find_spec("litellm") is None, reason="the litellm extra")


@pytest.fixture
def anthropic() -> Iterator[ThreadedMock]:
    mock = ThreadedMock(MockConfig(flavour="anthropic", key="sk-ant", chunks=5)).start()
    try:
        yield mock
    finally:
        mock.close()


def config_for(anthropic: ThreadedMock, *extra: dict[str, object]) -> GatewayConfig:
    native = {
        "model_name": "claude",
        "litellm_params": {
            "model": "anthropic/claude-3-5-haiku-20241022",
            "api_base": anthropic.root,
            "api_key": "sk-ant",
        },
    }
    return parse({"model_list": [native, *extra]}, environ={})


def ask(url: str, stream: bool = False) -> httpx.Response:
    body = {
        "model": "claude",
        "stream": stream,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return httpx.post(f"{url}/chat/completions", json=body, headers=AUTH, timeout=30)


def test_native_answer_is_reframed_as_openai(anthropic: ThreadedMock) -> None:
    with running_gateway(config_for(anthropic)) as gateway:
        response = ask(gateway.base)
        assert response.status_code == 200, response.text
        reply = response.json()
        assert reply["object"] == "chat.completion"
        assert reply["model"] == "claude"  # the group, as for every backend
        assert reply["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 tok4 "
        assert anthropic.config.headers[b"x-api-key"] == b"sk-ant"

        streamed = ask(gateway.base, stream=True)
        assert streamed.status_code == 200
        events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        text = "".join(
            (json.loads(e)["choices"][0]["delta"].get("content") or "")
            for e in events[:-1]
            if json.loads(e)["choices"]
        )
        assert text == "tok0 tok1 tok2 tok3 tok4 "
        assert anthropic.config.counts["/v1/messages"] == 2


def test_native_rate_limit_fails_over_to_the_next_order(anthropic: ThreadedMock) -> None:
    anthropic.config.mode = "error429"
    local = ThreadedMock(MockConfig()).start()
    try:
        backup = {
            "model_name": "claude",
            "litellm_params": {"model": "m", "api_base": local.url, "order": 2},
        }
        with running_gateway(config_for(anthropic, backup)) as gateway:
            response = ask(gateway.base)
            assert response.status_code == 200, response.text
        assert anthropic.config.counts["/v1/messages"] == 1  # LiteLLM's own retries are off
        assert local.config.counts["/v1/chat/completions"] == 1
    finally:
        local.close()


def test_openai_compatible_configs_never_import_litellm() -> None:
    code = (
        "import sys\n"
        "from gateway.app import create_app\n"
        "from gateway.config import parse\n"
        "from gateway.settings import GatewaySettings\n"
        "config = parse({'model_list': [{'model_name': 'c', 'litellm_params': "
        "{'model': 'groq/x', 'api_key': 'k'}}]}, environ={})\n"
        "create_app(GatewaySettings.build(), config)\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
