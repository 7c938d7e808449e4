"""RAG answering through a real llama.cpp inference server (tiny GGUF) as its LLM backend.

The tiny model writes nonsense, so this checks the pipe, not the prose: a real
OpenAI-compatible server receives the prompt, streams or not, and the answer
reaches the official SDK with the retrieved sources attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from p2.core.settings import CoreSettings
from rag.app import create_app
from rag.settings import RagSettings
from testkit.threadserver import ThreadServer
from tests.conftest import RunningServer, start_inference, stop
from tests.rag.corpus import DOCS


@pytest.fixture(scope="module")
def inference(tiny_gguf: Path, p2_home: Path) -> Iterator[RunningServer]:
    server = start_inference(p2_home, model=tiny_gguf, env={"CHAT_CTX_SIZE": "4096"})
    yield server
    stop(server)


def test_answers_through_a_real_inference_server(
    inference: RunningServer, make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    settings = make_settings(gateway_url=inference.url)
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    try:
        docs = [{"id": name, "text": text} for name, text in DOCS.items()]
        indexed = httpx.post(
            f"{server.url}/v1/rag/collections/kb/documents", json={"documents": docs}, timeout=60
        )
        assert indexed.status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 200

        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120)
        question: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": "How many bars of pressure make espresso?"}
        ]
        extra = {"top_k": 1}
        done = sdk.chat.completions.create(
            model="rag/kb",
            messages=question,
            max_tokens=8,
            extra_body=extra,
        )
        assert done.model == "rag/kb" and done.usage is not None
        sources = (done.model_extra or {})["sources"]
        assert [s["document_id"] for s in sources] == ["espresso.md"]
        assert isinstance(sources[0]["cited"], bool)

        chunks: list[ChatCompletionChunk] = list(
            sdk.chat.completions.create(
                model="rag/kb",
                messages=question,
                max_tokens=8,
                stream=True,
                extra_body=extra,
            )
        )
        last = (chunks[-1].model_extra or {}).get("sources")
        assert last is not None and last[0]["document_id"] == "espresso.md"
    finally:
        server.stop()


def test_completion_style_speaks_chat_to_the_client_over_a_real_server(
    inference: RunningServer, make_settings: Callable[..., RagSettings], tmp_path: Path
) -> None:
    settings = make_settings(gateway_url=inference.url, prompt_style="completion")
    server = ThreadServer(create_app(settings, CoreSettings(home=tmp_path))).start()
    try:
        docs = [{"id": name, "text": text} for name, text in DOCS.items()]
        httpx.post(
            f"{server.url}/v1/rag/collections/kb/documents", json={"documents": docs}, timeout=60
        )
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120)
        question: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": "How many bars of pressure make espresso?"}
        ]
        done = sdk.chat.completions.create(
            model="rag/kb", messages=question, max_tokens=8, extra_body={"top_k": 2}
        )
        assert done.object == "chat.completion" and done.choices[0].message.role == "assistant"
        assert done.usage is not None and done.usage.completion_tokens > 0
        assert (done.model_extra or {})["sources"][0]["document_id"] == "espresso.md"

        chunks = list(
            sdk.chat.completions.create(
                model="rag/kb",
                messages=question,
                max_tokens=8,
                stream=True,
                extra_body={"top_k": 2},
            )
        )
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finished) == 1 and finished[0].choices[0].finish_reason == "length"
        sources = (chunks[-1].model_extra or {}).get("sources")
        assert sources is not None and sources[0]["document_id"] == "espresso.md"
    finally:
        server.stop()
