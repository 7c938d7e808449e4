"""End to end on the real default models: SmolLM2-135M-Instruct (chat), Gemma 3 270M (code)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jsonschema  # type: ignore[import-untyped]
import openai
import pytest

from testkit.openai_errors import assert_openai_error
from tests.conftest import RunningServer, start_inference, stop
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_inference(tmp_path_factory.mktemp("chat-home"), model=None, role="chat")
    yield server
    stop(server)


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, list[int]]]:
    home = tmp_path_factory.mktemp("code-home")
    server = start_inference(home, model=None, role="code", wait=False)
    seen: list[int] = []
    deadline = time.monotonic() + 300
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                status = client.get(f"{server.url}/health").status_code
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == 200:
                break
            time.sleep(0.02)
    yield server, seen
    stop(server)


def ask(server: RunningServer, text: str, **extra: object) -> str:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": text}],
        temperature=0,
        max_tokens=80,
        **extra,  # type: ignore[arg-type]
    )
    return reply.choices[0].message.content or ""


def test_the_default_chat_model_answers_like_an_assistant(smollm2: RunningServer) -> None:
    colours = ask(smollm2, "Name three colours.")
    assert sum(c in colours.lower() for c in ("red", "blue", "green", "yellow")) >= 2
    code = ask(smollm2, "Write a Python function that adds two numbers.")
    assert "def " in code and "return" in code
    rag = ask(
        smollm2,
        "Context: [1] The gateway listens on port 8000. The RAG service is on 8002.\n\n"
        "Question: Which port does the gateway listen on?",
    )
    assert "8000" in rag


def test_the_default_chat_model_follows_a_schema_and_calls_tools(smollm2: RunningServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    client = openai.OpenAI(base_url=f"{smollm2.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Ann is 31. Describe her as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
        max_tokens=80,
    )
    person = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(person, schema)
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 40}},
                "required": ["city"],
            },
        },
    }
    call = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[weather],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=80,
    )
    assert call.choices[0].finish_reason == "tool_calls"
    calls = call.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert "paris" in json.loads(calls[0].function.arguments)["city"].lower()  # type: ignore[union-attr]


def test_code_server_health_is_503_while_loading_then_200(
    gemma: tuple[RunningServer, list[int]],
) -> None:
    _, seen = gemma
    assert seen == [503, 200]


def test_code_server_streams_gemma(gemma: tuple[RunningServer, list[int]]) -> None:
    server, _ = gemma
    body = {"model": "code", "prompt": "def add(a, b):", "max_tokens": 20, "stream": True}
    with server.client() as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            stream = parse_sse(list(response.iter_lines()))
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert stream.done and stream.text()
    assert models[0] == "code"


def test_a_broken_model_file_keeps_health_503_with_the_reason(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = server_factory(model=bad, wait=False)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{server.url}/health")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            error = response.json().get("error")
            if isinstance(error, dict) and error.get("code") == "failed":
                break
            time.sleep(0.05)
        chat = client.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
        )
    assert_openai_error(response, 503, code="failed", contains="failed to load")
    assert_openai_error(chat, 503, code="model_loading", contains="failed to load")
