"""Continuing a stream on another backend after its backend died mid-stream.

The gateway keeps the SSE events it already sent, unparsed (the hot path
pays nothing). Only when a backend dies are they parsed to recover what the
client has seen: the text, the stream's ``id``/``model``/``created``, and
whether a ``finish_reason`` already arrived. The next backend then gets a
*continuation request*: for ``/completions`` the prompt plus the text so far
(an exact continuation); for ``/chat/completions`` the conversation plus the
partial assistant turn and an instruction to continue it without repeating.
Its events are rewritten to look like the original stream's (same id and
model, no second role delta), so the client sees one unbroken stream.

Only text can be continued: once a stream has sent tool calls (or a function
call) or reasoning deltas, another backend cannot be asked to produce exactly
the rest of them, and asking would duplicate or garble them. Such a stream
ends with an OpenAI error event instead (``CannotContinue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from p2.core.sse import sse

CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off. Continue it exactly from where it stopped: "
    "do not repeat any of it, do not acknowledge this message, output only the rest."
)


class CannotContinue(Exception):
    """This request cannot be continued (e.g. a prompt given as token ids)."""


@dataclass
class Progress:
    """What the client has received so far, recovered from the sent events."""

    text: str = ""
    chunks: int = 0
    finished: bool = False
    unsafe: str | None = None  # what was sent that cannot be continued
    ident: str | None = None
    model: str | None = None
    created: int | None = None


def _events(raw: bytes) -> list[Any]:
    out = []
    for event in raw.split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data and data != b"[DONE]":
                    try:
                        out.append(orjson.loads(data))
                    except orjson.JSONDecodeError:
                        continue
    return out


_UNSAFE = {
    "tool_calls": "tool calls",
    "function_call": "a function call",
    "reasoning_content": "reasoning",
    "reasoning": "reasoning",
}


def _choice_text(choice: dict[str, Any], chat: bool) -> str:
    if chat:
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def _unsafe(choice: dict[str, Any]) -> str | None:
    """What a chat delta carries besides text that a continuation could not reproduce."""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None
    for key, what in _UNSAFE.items():
        if delta.get(key):
            return what
    return None


def progress(sent: list[bytes], chat: bool) -> Progress:
    """Parse the events already sent to the client."""
    state = Progress()
    parts: list[str] = []
    for payload in _events(b"".join(sent)):
        if not isinstance(payload, dict):
            continue
        if state.ident is None and "id" in payload:
            state.ident = payload.get("id")
            state.model = payload.get("model")
            state.created = payload.get("created")
        for choice in payload.get("choices") or ():
            if chat and state.unsafe is None:
                state.unsafe = _unsafe(choice)
            text = _choice_text(choice, chat)
            if text:
                parts.append(text)
                state.chunks += 1
            if choice.get("finish_reason"):
                state.finished = True
    state.text = "".join(parts)
    return state


def _reduce_budget(body: dict[str, Any], used: int) -> None:
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            body[key] = max(1, value - used)


def continuation_body(body: dict[str, Any], state: Progress, chat: bool) -> dict[str, Any]:
    """The request that makes another backend produce the rest of the stream."""
    if state.unsafe is not None:
        raise CannotContinue(
            f"the stream had already sent {state.unsafe}, which cannot be continued"
        )
    if not state.text:
        return body
    new = dict(body)
    _reduce_budget(new, state.chunks)
    if chat:
        messages = list(body.get("messages") or [])
        messages.append({"role": "assistant", "content": state.text})
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
        new["messages"] = messages
        return new
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise CannotContinue("a prompt given as token ids cannot be continued")
    new["prompt"] = prompt + state.text
    return new


class Rewriter:
    """Makes a continuation backend's events look like the original stream's."""

    def __init__(self, state: Progress, chat: bool) -> None:
        self.state = state
        self.chat = chat

    def _fix(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if self.state.ident is not None:
            payload["id"] = self.state.ident
        if self.state.model is not None:
            payload["model"] = self.state.model
        if self.state.created is not None:
            payload["created"] = self.state.created
        choices = payload.get("choices") or []
        if self.chat:
            for choice in choices:
                delta = choice.get("delta")
                if isinstance(delta, dict) and "role" in delta:
                    del delta["role"]
                    if not delta.get("content") and not choice.get("finish_reason"):
                        return None  # the continuation's own role-only opening chunk
        return payload

    def __call__(self, raw: bytes) -> bytes:
        out: list[bytes] = []
        for event in raw.split(b"\n\n"):
            if not event.strip():
                continue
            data = event.removeprefix(b"data:").strip()
            if data == b"[DONE]" or not event.startswith(b"data:"):
                out.append(event + b"\n\n")
                continue
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                fixed = self._fix(payload)
                if fixed is not None:
                    out.append(sse(fixed))
        return b"".join(out)
