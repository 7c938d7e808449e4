"""Prompts with numbered sources, and reading the citations back out of an answer."""

from __future__ import annotations

import re
from typing import Any

from rag.retrieval import Result

SYSTEM = (
    "You answer questions using only the numbered sources you are given. After each "
    "sentence that uses a source, cite it by writing the source's number in square "
    "brackets. If the sources do not contain the answer, say that you do not know."
)
_CITATION = re.compile(r"\[(\d{1,3})\]")
# A small model may echo its prompt: a source's own "[n] (from ...)" header is not a citation.
_ECHOED_HEADER = re.compile(r"\[\d{1,3}\] \(from [^)\n]*\)")


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_index(messages: list[dict[str, Any]]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user" and message_text(messages[i]).strip():
            return i
    return None


def sources_block(results: list[Result]) -> str:
    if not results:
        return "Sources: none were found."
    lines = ["Sources:"]
    for n, r in enumerate(results, start=1):
        lines.append(f"[{n}] (from {r.source}) {r.text}")
    return "\n\n".join(lines)


def build_messages(
    messages: list[dict[str, Any]], question_at: int, results: list[Result]
) -> list[dict[str, Any]]:
    """Our instructions and sources first, the conversation kept, the question restated last."""
    question = message_text(messages[question_at])
    prompt = f"{sources_block(results)}\n\nQuestion: {question}"
    history = [m for i, m in enumerate(messages) if i != question_at]
    return [
        {"role": "system", "content": SYSTEM},
        *history,
        {"role": "user", "content": prompt},
    ]


def cited_numbers(answer: str, available: int) -> list[int]:
    """Source numbers the answer cites, in order of first citation, ignoring invalid ones."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(_ECHOED_HEADER.sub(" ", answer)):
        n = int(match.group(1))
        if 1 <= n <= available:
            seen.setdefault(n, None)
    return list(seen)


def sources_json(results: list[Result], answer: str) -> list[dict[str, Any]]:
    """Every numbered source, each flagged ``cited`` if the answer refers to it."""
    cited = set(cited_numbers(answer, len(results)))
    return [
        {"index": n, "cited": n in cited, **r.as_json()} for n, r in enumerate(results, start=1)
    ]
