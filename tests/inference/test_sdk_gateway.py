"""The official ``openai`` SDK through a real gateway to a real inference server (tiny GGUF):
structured output, tool calls (streamed and not), logprobs, n=2, and unknown fields refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest

from tests.conftest import RunningServer, start_inference, stop
from tests.gateway.conftest import KEY, RunningGateway, make_config, running_gateway
from tests.inference.test_features import SCHEMA, WEATHER, WORDS_ONLY


@pytest.fixture(scope="module")
def inference(tiny_gguf: Path, p2_home: Path) -> Iterator[RunningServer]:
    server = start_inference(p2_home, model=tiny_gguf, env={"CHAT_CTX_SIZE": "2048"})
    yield server
    stop(server)


@pytest.fixture(scope="module")
def sdk(inference: RunningServer) -> Iterator[openai.OpenAI]:
    config = make_config({"chat": [(f"{inference.url}/v1", "chat")]})
    gateway: RunningGateway
    with running_gateway(
        config, first_byte_timeout=30.0, stream_idle_timeout=30.0, request_timeout=60.0
    ) as gateway:
        yield openai.OpenAI(base_url=gateway.base, api_key=KEY, max_retries=0, timeout=60)


def test_structured_output_is_schema_valid(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "weather as JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
        },
        max_tokens=300,
        seed=1,
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), SCHEMA)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_call_parses(sdk: openai.OpenAI, stream: bool) -> None:
    request: dict[str, Any] = {
        "model": "chat",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_tokens": 200,
        "seed": 2,
    }
    if not stream:
        choice = sdk.chat.completions.create(**request).choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        name, arguments = calls[0].function.name, calls[0].function.arguments  # type: ignore[union-attr]
    else:
        name, arguments, finish = "", "", None
        for chunk in sdk.chat.completions.create(**request, stream=True):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    if delta.function is not None:
                        name += delta.function.name or ""
                        arguments += delta.function.arguments or ""
        assert finish == "tool_calls"
    assert name == "get_weather"
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])


def test_logprobs_and_two_choices(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        n=2,
        logprobs=True,
        top_logprobs=2,
        logit_bias=WORDS_ONLY,  # type: ignore[arg-type]
        extra_body={"ignore_eos": True},
    )
    assert [c.index for c in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert len(choice.logprobs.content) == 4
        assert all(len(entry.top_logprobs) == 2 for entry in choice.logprobs.content)


def test_an_unknown_field_is_a_400_naming_it(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"frobnicate": 1},
        )
    assert err.value.status_code == 400
    body: Any = err.value.body
    assert body["param"] == "frobnicate" and "frobnicate" in body["message"]
