"""Prompts with numbered sources: chat messages for instruction-tuned models, a plain
completion prompt for base models (which echo chat instructions instead of following them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.retrieval import Result

SYSTEM = (
    "You answer questions using only the numbered sources you are given. After each "
    "sentence that uses a source, cite it by writing the source's number in square "
    "brackets. If the sources do not contain the answer, say that you do not know."
)
# Where a base model's answer ends: a blank line, a question or an excerpt it makes up.
COMPLETION_STOP = ("\n\n", "\nQ:", "\n[")


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


def completion_prompt(
    messages: list[dict[str, Any]], question_at: int, results: list[Result]
) -> str:
    """Excerpts, earlier turns as Q/A pairs, then ``Q: question`` and ``A:`` to complete.

    Excerpts keep their rank numbers but are listed best last, next to the
    question: a small model copies from what is nearest.
    """
    excerpts = [
        f"[{n}] ({r.source}) {' '.join(r.text.split())}" for n, r in enumerate(results, start=1)
    ]
    turns = []
    for i, message in enumerate(messages):
        text = " ".join(message_text(message).split())
        if i == question_at or not text:
            continue
        if message.get("role") == "user":
            turns.append(f"Q: {text}")
        elif message.get("role") == "assistant" and turns and "\nA: " not in turns[-1]:
            turns[-1] += f"\nA: {text}"  # an exchange reads like the one to complete
    question = " ".join(message_text(messages[question_at]).split())
    parts = ["Documentation excerpts:", *reversed(excerpts)] if excerpts else []
    return "\n\n".join([*parts, *turns, f"Q: {question}\nA:"])


def sources_json(results: list[Result], cited: Sequence[int]) -> list[dict[str, Any]]:
    """Every numbered source, each flagged ``cited`` if the answer refers to it."""
    flagged = set(cited)
    return [
        {"index": n, "cited": n in flagged, **r.as_json()} for n, r in enumerate(results, start=1)
    ]
