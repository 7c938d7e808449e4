"""Continuation requests and event rewriting, on recorded SSE bytes."""

from __future__ import annotations

import orjson
import pytest

from gateway.continuation import (
    CONTINUE_INSTRUCTION,
    CannotContinue,
    Rewriter,
    continuation_body,
    progress,
)


def event(payload: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def chat_chunk(delta: dict[str, object], finish: str | None = None, ident: str = "a") -> bytes:
    return event(
        {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "chat",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


SENT = [
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"content": "Hello"}) + chat_chunk({"content": " wor"}),
]


def test_progress_recovers_text_and_identity() -> None:
    state = progress(SENT, chat=True)
    assert state.text == "Hello wor"
    assert (state.ident, state.model, state.created, state.chunks) == ("a", "chat", 1, 2)
    assert not state.finished


def test_chat_continuation_appends_partial_turn_and_instruction() -> None:
    body = {"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "greet"}]}
    new = continuation_body(body, progress(SENT, chat=True), chat=True)
    assert new["messages"][-2:] == [
        {"role": "assistant", "content": "Hello wor"},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert new["max_tokens"] == 8
    assert body["messages"] == [{"role": "user", "content": "greet"}]  # original untouched


def test_completion_continuation_extends_prompt() -> None:
    sent = [
        event(
            {
                "id": "c",
                "model": "m",
                "created": 2,
                "choices": [{"index": 0, "text": "lazy", "finish_reason": None}],
            }
        )
    ]
    new = continuation_body(
        {"prompt": ["the quick "], "max_tokens": 3}, progress(sent, False), chat=False
    )
    assert new["prompt"] == "the quick lazy" and new["max_tokens"] == 2
    with pytest.raises(CannotContinue):
        continuation_body({"prompt": [1, 2, 3]}, progress(sent, False), chat=False)


def test_nothing_sent_means_the_original_request() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert continuation_body(body, progress(SENT[:1], chat=True), chat=True) is body


def test_rewriter_makes_continuation_look_like_the_original_stream() -> None:
    rewrite = Rewriter(progress(SENT, chat=True), chat=True)
    raw = (
        chat_chunk({"role": "assistant", "content": ""}, ident="b")
        + chat_chunk({"content": "ld"}, ident="b")
        + chat_chunk({}, finish="stop", ident="b")
        + b"data: [DONE]\n\n"
    )
    out = rewrite(raw)
    events = [e for e in out.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert [c["id"] for c in chunks] == ["a", "a"]
    assert chunks[0]["choices"][0]["delta"] == {"content": "ld"}
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"


def test_finished_stream_is_recognised() -> None:
    state = progress([*SENT, chat_chunk({}, finish="length")], chat=True)
    assert state.finished


@pytest.mark.parametrize(
    ("delta", "what"),
    [
        ({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}, "tool calls"),
        ({"function_call": {"name": "f", "arguments": "{"}}, "a function call"),
        ({"reasoning_content": "thinking"}, "reasoning"),
    ],
)
def test_streams_past_text_cannot_be_continued(delta: dict[str, object], what: str) -> None:
    state = progress([*SENT, chat_chunk(delta)], chat=True)
    with pytest.raises(CannotContinue, match=what):
        continuation_body({"messages": []}, state, chat=True)
