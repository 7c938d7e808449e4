"""Small training files for the fine-tuning tests, and an upload helper."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.jobs.conftest import USER_A, bearer

WORDS = ("the", "a", "is", "of", "and", "to", "in")


def chat_lines(count: int, answer: str = "the the") -> bytes:
    """Chat examples in OpenAI's format that the tiny test model can tokenize."""
    rows = []
    for i in range(count):
        question = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(4))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def pair_lines(count: int) -> bytes:
    rows = [
        {"query": f"package {i} summary", "positive": f"package {i} does thing {i} well"}
        for i in range(count)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(
    api: TestClient, content: bytes, key: str = USER_A, purpose: str = "fine-tune"
) -> dict[str, Any]:
    response = api.post(
        "/v1/files",
        files={"file": ("train.jsonl", content, "application/jsonl")},
        data={"purpose": purpose},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
