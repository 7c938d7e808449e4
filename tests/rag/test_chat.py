"""Cited answers: numbered sources in the prompt, citations mapped back to documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS

QUESTION = "Why can volcanic ash ground aircraft?"


@pytest.fixture
def rag_url(make_settings: Callable[..., RagSettings], tmp_path: Path) -> Iterator[str]:
    server = ThreadServer(create_app(make_settings(), CoreSettings(home=tmp_path))).start()
    docs = [{"id": name, "text": text} for name, text in DOCS.items()]
    answer = httpx.post(
        f"{server.url}/v1/rag/collections/kb/documents", json={"documents": docs}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    yield server.url
    server.stop()


def _cited(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in sources if s["cited"]]


def test_answer_cites_the_right_source_with_the_openai_sdk(
    rag_url: str, gateway_server: ThreadServer
) -> None:
    sdk = openai.OpenAI(base_url=f"{rag_url}/v1", api_key="unused")
    completion = sdk.chat.completions.create(
        model="rag/kb", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.model == "rag/kb"
    text = completion.choices[0].message.content or ""
    assert "[1]" in text
    sources = (completion.model_extra or {})["sources"]
    assert [s["index"] for s in sources] == list(range(1, len(sources) + 1))
    cited = _cited(sources)
    assert [s["document_id"] for s in cited] == ["volcanoes.md"]
    assert "ash" in cited[0]["text"]

    sent = gateway_server.app.state.requests[-1]
    assert sent["model"] == "chat"
    prompt = sent["messages"][-1]["content"]
    assert prompt.endswith(f"Question: {QUESTION}")
    assert "[1] (from volcanoes.md)" in prompt and "[2] (from " in prompt
    assert "square brackets" in sent["messages"][0]["content"]  # instructions ask for citations


def test_streamed_answer_carries_sources_on_the_last_chunk(rag_url: str) -> None:
    sdk = openai.OpenAI(base_url=f"{rag_url}/v1", api_key="unused")
    chunks = list(
        sdk.chat.completions.create(
            model="rag/kb", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "[1]" in text
    with_sources = [c for c in chunks if (c.model_extra or {}).get("sources")]
    assert len(with_sources) == 1 and with_sources[0] is chunks[-1]
    assert with_sources[0].choices[0].finish_reason == "stop"
    cited = _cited(with_sources[0].model_extra["sources"])  # type: ignore[index]
    assert [s["document_id"] for s in cited] == ["volcanoes.md"]
    assert all(c.model == "rag/kb" for c in chunks)


def test_rag_chat_endpoint_takes_collection_and_passes_sampling_fields(
    rag_url: str, gateway_server: ThreadServer
) -> None:
    body = {
        "collection": "kb",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me about bread."},
            {"role": "assistant", "content": "Bread is baked."},
            {"role": "user", "content": [{"type": "text", "text": "How do spring tides happen?"}]},
        ],
        "max_tokens": 33,
        "temperature": 0.1,
        "top_k": 2,
    }
    response = httpx.post(f"{rag_url}/v1/rag/chat", json=body, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model"] == "rag/kb" and data["object"] == "chat.completion"
    assert len(data["sources"]) == 2 and data["sources"][0]["document_id"] == "tides.txt"
    sent = gateway_server.app.state.requests[-1]
    assert sent["max_tokens"] == 33 and sent["temperature"] == 0.1
    assert "top_k" not in sent and "collection" not in sent
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "user", "assistant", "user"]
    assert "spring tides" in sent["messages"][-1]["content"]


def test_unknown_collection_and_unreachable_gateway_are_clean_errors(
    make_settings: Callable[..., RagSettings], tmp_path: Path, rag_url: str
) -> None:
    missing = httpx.post(
        f"{rag_url}/v1/chat/completions",
        json={"model": "rag/nope", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert_openai_error(missing, 404, code="collection_not_found")

    from p2.core.process import free_port

    settings = make_settings(
        gateway_url=f"http://127.0.0.1:{free_port()}", qdrant_path=tmp_path / "q2"
    )
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    try:
        httpx.post(
            f"{server.url}/v1/rag/collections/kb/documents",
            json={"documents": [{"id": "a", "text": "Tides follow the moon."}]},
            timeout=60,
        )
        down = httpx.post(
            f"{server.url}/v1/rag/chat",
            json={"collection": "kb", "messages": [{"role": "user", "content": "tides?"}]},
            timeout=60,
        )
        assert_openai_error(down, 503, code="gateway_unavailable")
    finally:
        server.stop()


def test_gateway_key_timeout_and_refusal(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    from tests.rag.faultproxy import FaultProxy
    from tests.rag.mock_gateway import mock_gateway_app

    keyed = ThreadServer(mock_gateway_app(api_key="sk-rag-test")).start()
    stalled = FaultProxy(keyed.port)
    stalled.set_mode("stall")
    ask = {"collection": "kb", "messages": [{"role": "user", "content": "Why tides?"}]}
    docs = {"documents": [{"id": "t", "text": "Tides follow the Moon."}]}
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({"gateway_api_key": "sk-rag-test"}, keyed.url, 200),
        ({}, keyed.url, 502),  # no key: the gateway's 401 is RAG's misconfiguration
        ({"llm_timeout": 0.5}, stalled.url, 504),
    ]
    try:
        for n, (extra, gateway, status) in enumerate(cases):
            settings = make_settings(gateway_url=gateway, qdrant_path=tmp_path / f"q{n}", **extra)
            server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
            try:
                httpx.post(f"{server.url}/v1/rag/collections/kb/documents", json=docs, timeout=60)
                answer = httpx.post(f"{server.url}/v1/rag/chat", json=ask, timeout=60)
                if status == 200:
                    assert answer.json()["object"] == "chat.completion", answer.text
                else:
                    assert_openai_error(answer, status)
                    assert "sk-rag-test" not in answer.text
            finally:
                server.stop()
    finally:
        stalled.close()
        keyed.stop()


@pytest.fixture
def base_model_rag(make_settings: Callable[..., RagSettings], tmp_path: Path) -> Iterator[str]:
    """RAG in front of a base model: completion prompts, answers that cite nothing."""
    settings = make_settings(prompt_style="completion", qdrant_path=tmp_path / "q-base")
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    docs = [{"id": name, "text": text} for name, text in DOCS.items()]
    httpx.post(f"{server.url}/v1/rag/collections/kb/documents", json={"documents": docs})
    yield server.url
    server.stop()


def test_a_base_model_s_answer_is_cited_by_the_source_it_quotes(
    base_model_rag: str, gateway_server: ThreadServer
) -> None:
    sdk = openai.OpenAI(base_url=f"{base_model_rag}/v1", api_key="unused")
    completion = sdk.chat.completions.create(
        model="rag/kb", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.object == "chat.completion" and completion.model == "rag/kb"
    assert completion.id.startswith("chatcmpl-")
    text = completion.choices[0].message.content or ""
    assert text.endswith(" [1].")  # the mock cited nothing; its words come from source 1
    cited = _cited((completion.model_extra or {})["sources"])
    assert [s["document_id"] for s in cited] == ["volcanoes.md"]

    sent = gateway_server.app.state.requests[-1]
    assert "messages" not in sent and sent["prompt"].endswith(f"Q: {QUESTION}\nA:")
    assert sent["prompt"].rindex("[1] (volcanoes.md)") > sent["prompt"].rindex("[2] (")
    assert "\n\n" in sent["stop"]


def test_a_base_model_s_stream_gets_its_citation_before_the_finish(base_model_rag: str) -> None:
    sdk = openai.OpenAI(base_url=f"{base_model_rag}/v1", api_key="unused")
    chunks = list(
        sdk.chat.completions.create(
            model="rag/kb", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith(". [1]")
    assert chunks[-1].choices[0].finish_reason == "stop"
    cited = _cited(chunks[-1].model_extra["sources"])  # type: ignore[index]
    assert [s["document_id"] for s in cited] == ["volcanoes.md"]


def test_with_model_citations_only_an_uncited_answer_cites_nothing(
    make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    settings = make_settings(prompt_style="completion", citations="model")
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    try:
        docs = [{"id": name, "text": text} for name, text in DOCS.items()]
        httpx.post(f"{server.url}/v1/rag/collections/kb/documents", json={"documents": docs})
        data = httpx.post(
            f"{server.url}/v1/rag/chat",
            json={"collection": "kb", "messages": [{"role": "user", "content": QUESTION}]},
            timeout=60,
        ).json()
        assert "[" not in data["choices"][0]["message"]["content"]
        assert not _cited(data["sources"])
    finally:
        server.stop()
