"""Text-completion responses reshaped as chat completions, for the completion prompt style.

Clients of ``rag/<collection>`` always speak chat; with ``RAG_PROMPT_STYLE=completion``
RAG asks the gateway's ``/v1/completions`` and answers in chat's shape.
"""

from __future__ import annotations

from typing import Any


def _message_choice(choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": choice.get("index", 0),
        "message": {"role": "assistant", "content": str(choice.get("text") or "")},
        "finish_reason": choice.get("finish_reason"),
    }


def _chat_id(data: dict[str, Any]) -> dict[str, Any]:
    """Everything but the choices, with a chat-style id (``chatcmpl-``, as OpenAI's)."""
    rest = {k: v for k, v in data.items() if k != "choices"}
    ident = rest.get("id")
    if isinstance(ident, str) and ident.startswith("cmpl-"):
        rest["id"] = "chat" + ident
    return rest


def chat_from_completion(data: dict[str, Any]) -> dict[str, Any]:
    """A ``text_completion`` body as a ``chat.completion`` body (id, usage and all)."""
    return {
        **_chat_id(data),
        "object": "chat.completion",
        "choices": [_message_choice(c) for c in data.get("choices") or []],
    }


def chunk_from_completion(chunk: dict[str, Any], first: bool) -> dict[str, Any]:
    """A streamed ``text_completion`` chunk as a ``chat.completion.chunk``."""
    choices = []
    for choice in chunk.get("choices") or []:
        delta: dict[str, Any] = {"content": str(choice.get("text") or "")}
        if first:
            delta = {"role": "assistant", **delta}
        choices.append(
            {
                "index": choice.get("index", 0),
                "delta": delta,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    return {
        **_chat_id(chunk),
        "object": "chat.completion.chunk",
        "choices": choices,
    }
