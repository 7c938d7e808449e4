"""The OpenAI API contract, run against both engines on a tiny real GGUF."""

from __future__ import annotations

import httpx
import pytest

from testkit.openai_errors import assert_openai_error
from tests.conftest import RunningServer
from tests.sse import parse_sse

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}


def stream_lines(client: httpx.Client, path: str, body: dict[str, object]) -> tuple[int, list[str]]:
    with client.stream("POST", path, json=body) as response:
        return response.status_code, list(response.iter_lines())


def test_chat_completion_returns_text_and_usage(tiny_server: RunningServer) -> None:
    with tiny_server.client() as client:
        response = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 8})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "chat"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_is_well_formed_and_ends_with_done(tiny_server: RunningServer) -> None:
    body = {**CHAT, "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}}
    with tiny_server.client() as client:
        status, lines = stream_lines(client, "/v1/chat/completions", body)
    assert status == 200
    stream = parse_sse(lines)
    assert stream.done and not stream.errors
    assert stream.chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in stream.chunks)
    assert len(stream.finish_reasons()) == 1
    assert stream.chunks[-1]["usage"]["completion_tokens"] <= 12


def test_stream_and_non_stream_agree_at_temperature_zero(tiny_server: RunningServer) -> None:
    body = {**CHAT, "max_tokens": 16, "temperature": 0.0}
    with tiny_server.client() as client:
        full = client.post("/v1/chat/completions", json=body).json()
        _, lines = stream_lines(client, "/v1/chat/completions", {**body, "stream": True})
    assert parse_sse(lines).text() == full["choices"][0]["message"]["content"]


def test_completions_stream_and_not(tiny_server: RunningServer) -> None:
    body = {"model": "chat", "prompt": "the cat is", "max_tokens": 6, "temperature": 0.0}
    with tiny_server.client() as client:
        full = client.post("/v1/completions", json=body)
        status, lines = stream_lines(client, "/v1/completions", {**body, "stream": True})
    assert full.status_code == 200
    assert full.json()["object"] == "text_completion"
    assert status == 200
    stream = parse_sse(lines)
    assert stream.done
    assert stream.text() == full.json()["choices"][0]["text"]


def test_models_lists_the_role(tiny_server: RunningServer) -> None:
    with tiny_server.client() as client:
        data = client.get("/v1/models").json()
    ids = [m["id"] for m in data["data"]]
    assert data["object"] == "list"
    assert ids[0] == "chat"
    assert "tiny" in ids  # the file name is accepted too


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"model": "chat"}, 400, "messages"),
        ({**CHAT, "temperature": "hot"}, 400, "temperature"),
        ({**CHAT, "max_tokens": -1}, 400, "max_tokens"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 400, None),
        ({**CHAT, "n": 9}, 400, "n"),
        ({**CHAT, "model": "gpt-4"}, 404, "model"),
        ({**CHAT, "model": "ft:chat:demo:no-such-adapter"}, 404, "model"),
        ({**CHAT, "max_tokens": 100_000}, 400, "max_tokens"),
        ({**CHAT, "messages": [{"role": "user", "content": "the " * 3000}]}, 400, "messages"),
        ({**CHAT, "frobnicate": True}, 400, "frobnicate"),
        ({**CHAT, "functions": [{"name": "f"}]}, 400, "functions"),
        ({**CHAT, "top_logprobs": 3}, 400, "top_logprobs"),
        ({**CHAT, "logit_bias": {"999999": 5}}, 400, "logit_bias"),
        (
            {
                **CHAT,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
                },
            },
            400,
            "response_format",
        ),
        (
            {
                **CHAT,
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            },
            400,
            "tool_choice",
        ),
    ],
    ids=[
        "no-messages",
        "missing-messages",
        "wrong-type",
        "negative-max-tokens",
        "bad-role",
        "n-beyond-slots",
        "unknown-model",
        "unknown-adapter",
        "max-tokens-beyond-context",
        "prompt-beyond-context",
        "unknown-field",
        "refused-field",
        "top-logprobs-alone",
        "logit-bias-outside-vocab",
        "bad-schema",
        "unknown-named-tool",
    ],
)
def test_bad_chat_input_gets_openai_4xx(
    tiny_server: RunningServer, payload: dict[str, object], status: int, param: str | None
) -> None:
    with tiny_server.client(timeout=10) as client:
        response = client.post("/v1/chat/completions", json=payload)
        streamed = client.post("/v1/chat/completions", json={**payload, "stream": True})
    error = assert_openai_error(response, status)
    assert_openai_error(streamed, status)  # streaming must not hide the error behind a 200
    if param is not None:
        assert str(error["param"]).startswith(param)
        if status == 400 and not param.startswith(("messages", "max_tokens")):
            assert param in error["message"] or error["param"] == param


def test_invalid_json_is_400(tiny_server: RunningServer) -> None:
    with tiny_server.client(timeout=10) as client:
        response = client.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert_openai_error(response, 400, contains="JSON")


def test_long_completion_prompt_is_400(tiny_server: RunningServer) -> None:
    with tiny_server.client(timeout=10) as client:
        response = client.post("/v1/completions", json={"prompt": "the " * 3000})
    assert_openai_error(response, 400, code="context_length_exceeded", param="prompt")


def test_token_ids_outside_the_vocabulary_are_400(tiny_server: RunningServer) -> None:
    with tiny_server.client(timeout=10) as client:
        for prompt in ([1, 5, 10**6], [-3]):
            response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 2})
            assert_openai_error(response, 400, param="prompt", contains="vocabulary")


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_tokens_and_requests(tiny_server: RunningServer) -> None:
    with tiny_server.client() as client:
        before = client.get("/metrics").text
        client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5})
        after = client.get("/metrics").text
    assert _metric(after, "p2_inference_generated_tokens_total") > _metric(
        before, "p2_inference_generated_tokens_total"
    )
    assert _metric(after, "p2_inference_prompt_tokens_total") > _metric(
        before, "p2_inference_prompt_tokens_total"
    )
    chats = 'p2_inference_requests_total{route="/v1/chat/completions",status="200"}'
    assert _metric(after, chats) == _metric(before, chats) + 1
    for name in (
        "p2_inference_time_to_first_token_seconds_count",
        "p2_inference_queued_requests",
        "p2_inference_in_flight_requests",
        "p2_inference_tokens_per_second_count",
        "p2_inference_rejected_requests_total",
        "p2_inference_cancelled_requests_total",
        'p2_inference_info{role="chat"} 1.0',
    ):
        assert name in after
