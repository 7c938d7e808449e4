"""Training files: OpenAI's chat-format JSONL, or (query, positive) pairs for embeddings.

Checked line by line in the job API before a job may queue, so a bad file fails
in ``validating_files`` with the line that is wrong and no GPU time is spent;
the trainer reads the same rows with the same code. Pure Python: the API
imports this without torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

ROLES = ("system", "developer", "user", "assistant")
UNSUPPORTED_KEYS = ("tools", "functions", "parallel_tool_calls")
MIN_PAIRS = 2  # in-batch negatives need another pair in the batch


class Format(StrEnum):
    CHAT = "chat"  # {"messages": [{"role", "content"}, ...]}
    PAIRS = "pairs"  # {"query": ..., "positive": ...}


class DataError(ValueError):
    """A training file is not usable; the message names the line (1-based) when one is."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass(frozen=True)
class Summary:
    """What validation found: how many examples, and of those how many assistant turns
    (chat) that carry a loss."""

    examples: int
    targets: int


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for every non-blank line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError("not valid UTF-8", number) from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                message = f"not valid JSON ({exc.msg} at column {exc.colno})"
                raise DataError(message, number) from None


def _text(value: Any, where: str, line: int) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where} must be a string", line)
    return value


def chat_example(row: Any, line: int) -> list[dict[str, Any]]:
    """The messages of one chat example; ``DataError`` names what is wrong."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise DataError("expected an object with a 'messages' list", line)
    for key in UNSUPPORTED_KEYS:
        if key in row:
            raise DataError(f"'{key}' is not supported: examples are plain chat messages", line)
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(row["messages"]):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise DataError(f"{where} must be an object with 'role' and 'content'", line)
        role = message.get("role")
        if role not in ROLES:
            raise DataError(f"{where}.role must be one of {', '.join(ROLES)}", line)
        if "tool_calls" in message or "function_call" in message:
            raise DataError(f"{where}: tool calls are not supported", line)
        content = _text(message.get("content"), f"{where}.content", line)
        weight = message.get("weight", 1)
        if role == "assistant" and weight not in (0, 1):
            raise DataError(f"{where}.weight must be 0 or 1", line)
        messages.append({"role": role, "content": content, "weight": weight})
    targets = [m for m in messages if m["role"] == "assistant" and m["weight"] == 1]
    if not targets:
        raise DataError("no assistant message to learn from (with weight 1)", line)
    if not any(m["content"].strip() for m in targets):
        raise DataError("every assistant message to learn from is empty", line)
    return messages


def pair_example(row: Any, line: int) -> tuple[str, str]:
    """The (query, positive) of one pair; other keys are ignored."""
    if not isinstance(row, dict):
        raise DataError("expected an object with 'query' and 'positive'", line)
    pair = []
    for key in ("query", "positive"):
        if key not in row:
            raise DataError(f"missing '{key}'", line)
        text = _text(row[key], f"'{key}'", line)
        if not text.strip():
            raise DataError(f"'{key}' is empty", line)
        pair.append(text)
    return pair[0], pair[1]


def read_chat(path: Path) -> list[list[dict[str, Any]]]:
    return [chat_example(row, line) for line, row in _lines(path)]


def read_pairs(path: Path) -> list[tuple[str, str]]:
    return [pair_example(row, line) for line, row in _lines(path)]


def check(path: Path, fmt: Format) -> Summary:
    """Validate a whole file; the first problem raises ``DataError``."""
    if fmt is Format.CHAT:
        examples = read_chat(path)
        targets = sum(
            1 for messages in examples for m in messages if m["role"] == "assistant" and m["weight"]
        )
        if not examples:
            raise DataError("the file has no examples")
        return Summary(len(examples), targets)
    pairs = read_pairs(path)
    if len(pairs) < MIN_PAIRS:
        raise DataError(f"at least {MIN_PAIRS} pairs are needed, the file has {len(pairs)}")
    return Summary(len(pairs), len(pairs))
