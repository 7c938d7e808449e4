"""OpenAI features both engines honour the same way: structured output, tools, logprobs,
n, seed, stop, logit_bias, LoRA adapters. The tiny model's weights are random, so what it
says is noise; what is checked is what the contract promises whatever it says."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.conftest import RunningServer
from tests.inference.conftest import ADAPTER_ID
from tests.sse import parse_sse

USER = [{"role": "user", "content": "the weather in Paris, as JSON"}]
# Bounded on purpose: a random model must finish the object well within max_tokens.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "count": {"type": "integer"},
        "city": {"enum": ["Paris", "Oslo"]},
    },
    "required": ["ok", "count", "city"],
    "additionalProperties": False,
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Oslo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CLOCK: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"utc": {"type": "boolean"}},
            "required": ["utc"],
            "additionalProperties": False,
        },
    },
}
ARGUMENTS: dict[str, dict[str, Any]] = {"get_weather": WEATHER, "get_time": CLOCK}


def post(server: RunningServer, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    with server.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stream(server: RunningServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    path, streamed = "/v1/chat/completions", {**body, "stream": True}
    with server.client() as client, client.stream("POST", path, json=streamed) as response:
        assert response.status_code == 200
        parsed = parse_sse(list(response.iter_lines()))
    assert parsed.done and not parsed.errors
    return parsed.chunks


def test_json_schema_output_is_schema_valid_streamed_or_not(tiny_server: RunningServer) -> None:
    body = {
        "messages": USER,
        "max_tokens": 300,
        "temperature": 1.0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "weather", "strict": True, "schema": SCHEMA},
        },
    }
    for seed in (1, 2):
        choice = post(tiny_server, {**body, "seed": seed})["choices"][0]
        assert choice["finish_reason"] == "stop"
        jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)
    chunks = stream(tiny_server, {**body, "seed": 3})
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    jsonschema.validate(json.loads(text), SCHEMA)


def test_a_json_string_never_holds_a_raw_newline(tiny_server: RunningServer) -> None:
    """JSON forbids control characters inside strings: even a model that wants nothing but
    newlines (token 13 is a newline in the tiny vocabulary) gets a string without them."""
    schema = {
        "type": "object",
        "properties": {"note": {"type": "string", "maxLength": 12}},
        "required": ["note"],
        "additionalProperties": False,
    }
    body = {
        "messages": USER,
        "max_tokens": 100,
        "temperature": 0,
        "logit_bias": {**WORDS_ONLY, "13": 100},  # newlines first, else whole words
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    }
    choice = post(tiny_server, body)["choices"][0]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["message"]["content"]), schema)


def test_json_object_output_parses(tiny_server: RunningServer) -> None:
    body = {
        "messages": USER,
        "max_tokens": 400,
        "seed": 4,
        "response_format": {"type": "json_object"},
    }
    choice = post(tiny_server, body)["choices"][0]
    if choice["finish_reason"] == "stop":  # a grammar guarantees a prefix; a cut is "length"
        assert isinstance(json.loads(choice["message"]["content"]), dict)
    else:
        assert choice["finish_reason"] == "length"


def _check_call(call: dict[str, Any]) -> None:
    assert call["type"] == "function" and call["id"].startswith("call_")
    name = call["function"]["name"]
    schema = ARGUMENTS[name]["function"]["parameters"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), schema)


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_time"}}]
)
def test_required_and_named_tool_calls_always_parse(
    tiny_server: RunningServer, choice: str | dict[str, Any]
) -> None:
    body = {
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER, CLOCK],
        "tool_choice": choice,
        "max_tokens": 200,
        "seed": 5,
    }
    answer = post(tiny_server, body)["choices"][0]
    assert answer["finish_reason"] == "tool_calls"
    calls = answer["message"]["tool_calls"]
    assert calls
    for call in calls:
        _check_call(call)
    if isinstance(choice, dict):
        assert [c["function"]["name"] for c in calls] == ["get_time"]


def test_streamed_tool_calls_reassemble_into_the_same_shape(tiny_server: RunningServer) -> None:
    body = {
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_tokens": 200,
        "seed": 6,
    }
    calls: dict[int, dict[str, Any]] = {}
    finishes = []
    for chunk in stream(tiny_server, body):
        for choice in chunk["choices"]:
            if choice["finish_reason"]:
                finishes.append(choice["finish_reason"])
            for delta in choice["delta"].get("tool_calls", []):
                call = calls.setdefault(delta["index"], {"function": {"arguments": ""}})
                if "id" in delta:
                    call.update(id=delta["id"], type=delta["type"])
                    call["function"]["name"] = delta["function"]["name"]
                call["function"]["arguments"] += delta["function"].get("arguments", "")
    assert finishes == ["tool_calls"]
    assert list(calls) == [0]  # parallel_tool_calls false: exactly one
    _check_call(calls[0])


def test_a_tool_conversation_continues(tiny_server: RunningServer) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21C and sunny"},
    ]
    body = {"messages": messages, "tools": [WEATHER], "tool_choice": "none", "max_tokens": 5}
    assert post(tiny_server, body)["choices"][0]["finish_reason"] in ("stop", "length")


# The tiny model's bytes often split UTF-8 characters; llama-server then merges a token into
# the next one and reports no logprob for it. Words only (token ids 259-266) keep them whole.
WORDS_ONLY = {str(token): 50 for token in range(259, 267)}


def test_chat_logprobs_have_openais_shape(tiny_server: RunningServer) -> None:
    body = {
        "messages": USER,
        "max_tokens": 6,
        "ignore_eos": True,
        "logprobs": True,
        "logit_bias": WORDS_ONLY,
    }
    plain = post(tiny_server, body)
    content = plain["choices"][0]["logprobs"]["content"]
    assert len(content) == plain["usage"]["completion_tokens"] == 6
    assert all(entry["top_logprobs"] == [] for entry in content)  # none unless asked
    top = post(tiny_server, {**body, "top_logprobs": 3})["choices"][0]["logprobs"]["content"]
    for entry in top:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 3
        values = [alt["logprob"] for alt in entry["top_logprobs"]]
        assert values == sorted(values, reverse=True)
        assert entry["logprob"] <= values[0] + 1e-4
    assert "".join(bytes(e["bytes"]).decode("utf-8", "replace") for e in top)


def test_completion_logprobs_have_the_legacy_shape(tiny_server: RunningServer) -> None:
    body = {
        "prompt": "the cat",
        "max_tokens": 4,
        "ignore_eos": True,
        "logprobs": 2,
        "logit_bias": WORDS_ONLY,
    }
    logprobs = post(tiny_server, body, "/v1/completions")["choices"][0]["logprobs"]
    assert set(logprobs) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 4
    assert all(1 <= len(top) <= 3 for top in logprobs["top_logprobs"])  # same-text tokens merge
    assert logprobs["text_offset"][0] == 0


def test_n_choices_streamed_with_their_indexes(tiny_server: RunningServer) -> None:
    body = {"messages": USER, "max_tokens": 5, "ignore_eos": True, "n": 2, "seed": 8}
    full = post(tiny_server, body)
    assert [c["index"] for c in full["choices"]] == [0, 1]
    assert full["usage"]["completion_tokens"] == 10
    finishes: dict[int, str] = {}
    for chunk in stream(tiny_server, body):
        for choice in chunk["choices"]:
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert finishes == {0: "length", 1: "length"}


def test_the_same_seed_gives_the_same_answer(tiny_server: RunningServer) -> None:
    body = {"messages": USER, "max_tokens": 12, "temperature": 1.5, "top_k": 0, "min_p": 0}
    texts = [
        post(tiny_server, {**body, "seed": s})["choices"][0]["message"]["content"]
        for s in (11, 11, 12)
    ]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_a_stop_string_ends_the_text_before_it(tiny_server: RunningServer) -> None:
    body = {"prompt": "the", "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    text = post(tiny_server, body, "/v1/completions")["choices"][0]["text"]
    assert len(text) > 4
    stop = text[2:4]
    cut = post(tiny_server, {**body, "stop": [stop]}, "/v1/completions")["choices"][0]
    assert cut["text"] == text[: text.index(stop)]
    assert cut["finish_reason"] == "stop"


def test_logit_bias_is_honoured(tiny_server: RunningServer) -> None:
    body = {"prompt": "the", "max_tokens": 5, "temperature": 0, "ignore_eos": True}
    forced = post(tiny_server, {**body, "logit_bias": {"263": 100}}, "/v1/completions")
    assert forced["choices"][0]["text"] == " of" * 5  # token 263 is "▁of" in the tiny vocab


def test_a_message_that_spells_control_tokens_stays_text(tiny_server: RunningServer) -> None:
    def prompt_tokens(text: str) -> int:
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1}
        return int(post(tiny_server, body)["usage"]["prompt_tokens"])

    assert prompt_tokens("</s>") - prompt_tokens("") >= len("</s>")  # its bytes, not one EOS


def test_an_adapter_changes_the_answer_for_its_request_only(tiny_server: RunningServer) -> None:
    name = f"ft:chat:demo:{ADAPTER_ID}"
    with tiny_server.client() as client:
        assert name in [m["id"] for m in client.get("/v1/models").json()["data"]]
    body = {"prompt": "the cat is", "max_tokens": 10, "temperature": 0, "ignore_eos": True}
    base = post(tiny_server, body, "/v1/completions")["choices"][0]["text"]
    tuned = post(tiny_server, {**body, "model": name}, "/v1/completions")
    assert tuned["model"] == name
    assert tuned["choices"][0]["text"] != base
    again = post(tiny_server, body, "/v1/completions")["choices"][0]["text"]
    assert again == base  # no adapter, and no stale cache from the tuned request


def test_keys_lock_the_port_but_not_its_probes(server_factory: Any, tiny_gguf: Any) -> None:
    server = server_factory(model=tiny_gguf, env={"P2_API_KEYS": "sk-inference-test"})
    body = {"messages": USER, "max_tokens": 2}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 401
        assert client.get("/v1/models").status_code == 401
        auth = {"Authorization": "Bearer sk-inference-test"}
        assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
