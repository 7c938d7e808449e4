"""Which request fields are honoured, which refused by name, and the tool and schema rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from inference import tools
from inference.decoding import ChoiceDecoder
from inference.engines.base import Token, TokenLogprob
from inference.protocol import ChatCompletionRequest, CompletionRequest, Tool
from inference.structured import SchemaError, schema_to_gbnf
from p2.core.errors import BadRequest

USER = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": USER, **fields})


@pytest.mark.parametrize(
    "field",
    ["functions", "function_call", "audio", "prediction", "reasoning_effort", "metadata", "foo"],
)
def test_fields_not_honoured_are_refused_by_name(field: str) -> None:
    with pytest.raises(ValidationError) as err:
        chat(**{field: {"x": 1}})
    assert err.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    "fields",
    [
        {"user": "u1", "safety_identifier": "s", "prompt_cache_key": "k"},
        {"store": False, "service_tier": "auto", "modalities": ["text"]},
        {"seed": 2**63 - 1, "logit_bias": {"5": -100}, "parallel_tool_calls": False},
    ],
)
def test_harmless_fields_are_accepted(fields: dict[str, Any]) -> None:
    chat(**fields)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_inconsistent_fields_are_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        chat(**fields).check()
    assert err.value.param == param


def test_completions_refuse_what_they_cannot_do() -> None:
    for field, value in (("best_of", 2), ("suffix", "x"), ("echo", True)):
        with pytest.raises(ValidationError):
            CompletionRequest.model_validate({"prompt": "a", field: value})


def test_a_tool_message_needs_the_call_it_answers() -> None:
    with pytest.raises(ValidationError):
        chat(messages=[*USER, {"role": "tool", "content": "12C"}])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "string", "maxLength": 10**7},
        {"properties": 5},
    ],
)
def test_unusable_schemas_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        schema_to_gbnf(schema)


def test_tool_turns_render_calls_and_results_as_text() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            *USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
        ],
        tools=[WEATHER],
    )
    turns = tools.turns(body.messages, body.tools, body.tool_choice)
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0].content.startswith("Be brief.") and "<tools>" in turns[0].content
    assert json.loads(turns[2].content.split("\n")[1]) == {
        "name": "get_weather",
        "arguments": {"city": "Oslo"},
    }
    assert turns[3].content == "<tool_response>\n12C\n</tool_response>"
    assert "<tools>" not in tools.turns(body.messages, body.tools, "none")[0].content


def test_tool_grammars_by_choice() -> None:
    weather = [Tool.model_validate(WEATHER)]
    assert tools.call_grammar(weather, "none", None) is None
    auto = tools.call_grammar(weather, "auto", None)
    required = tools.call_grammar(weather, "required", None)
    single = tools.call_grammar(weather, "required", False)
    assert auto is not None and auto.triggers  # lazy: free text until <tool_call>
    assert required is not None and not required.triggers
    assert single is not None and "(p2-nl" in required.gbnf and "(p2-nl" not in single.gbnf


def test_calls_are_released_when_complete_and_text_around_them_stays() -> None:
    scanner = tools.CallScanner()
    out = [
        scanner.feed(part)
        for part in (
            "Sure. <tool",
            '_call>\n{"name": "f", "argu',
            'ments": {"a": 1}}\n</tool_call>\n',
        )
    ]
    assert out[0] == ("Sure. ", [])
    assert out[1] == ("", [])
    text, calls = out[2]
    assert text == "" and [(c.name, json.loads(c.arguments)) for c in calls] == [("f", {"a": 1})]
    broken = scanner.feed("<tool_call>{not json}</tool_call>", final=True)[0]
    assert broken == "\n<tool_call>{not json}</tool_call>"  # held whitespace, then the text


def test_a_stop_string_drops_the_logprobs_of_what_it_cuts() -> None:
    decoder = ChoiceDecoder(["END"], None)
    pieces = [
        decoder.feed(Token(0, text.encode(), TokenLogprob(i, -float(i))))
        for i, text in enumerate(["Hello", " wor", "ldEN", "D more"])
    ]
    tail = decoder.finish()
    assert "".join(p.text for p in [*pieces, tail]) == "Hello world"
    kept = [lp.token for p in [*pieces, tail] for _, lp in p.logprobs]
    assert kept == [0, 1]  # "ldEN" straddles the stop: its text is cut, so is its logprob
    assert decoder.stopped
