"""``model: rag/<collection>`` on the gateway goes to the RAG service, the name intact."""

from __future__ import annotations

import openai
import pytest

from gateway.config import GatewayConfig
from testkit.mock_openai import MockConfig, ThreadedMock
from tests.gateway.conftest import KEY, running_gateway


def test_rag_models_are_forwarded_to_the_rag_service(config: GatewayConfig) -> None:
    rag = ThreadedMock(MockConfig()).start()  # stands in for RAG's OpenAI endpoint
    try:
        with running_gateway(config, rag_url=f"http://127.0.0.1:{rag.port}") as gw:
            client = openai.OpenAI(base_url=gw.base, api_key=KEY, max_retries=0, timeout=20)
            reply = client.chat.completions.create(
                model="rag/handbook", messages=[{"role": "user", "content": "q"}]
            )
            stream = client.chat.completions.create(
                model="rag/handbook", messages=[{"role": "user", "content": "q"}], stream=True
            )
            chunks = list(stream)
            assert reply.model == "rag/handbook"
            assert reply.choices[0].message.content
            assert chunks and all(c.model == "rag/handbook" for c in chunks)
            assert rag.config.counts["/v1/chat/completions"] == 2
            ready = gw.app.state.service.ready(admin=True)
            assert ready.status_code == 200  # RAG is not a model group of its own
    finally:
        rag.close()


def test_rag_models_are_unknown_without_a_rag_service(config: GatewayConfig) -> None:
    with running_gateway(config) as gw:
        client = openai.OpenAI(base_url=gw.base, api_key=KEY, max_retries=0, timeout=20)
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(
                model="rag/handbook", messages=[{"role": "user", "content": "q"}]
            )
    assert "Known models: chat, code" in str(err.value)


def test_rag_models_are_chat_only(config: GatewayConfig) -> None:
    rag = ThreadedMock(MockConfig()).start()
    try:
        with running_gateway(config, rag_url=f"http://127.0.0.1:{rag.port}") as gw:
            client = openai.OpenAI(base_url=gw.base, api_key=KEY, max_retries=0, timeout=20)
            with pytest.raises(openai.NotFoundError):
                client.completions.create(model="rag/handbook", prompt="q")
        assert rag.config.counts["/v1/completions"] == 0
    finally:
        rag.close()
