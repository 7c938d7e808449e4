"""Parse OpenAI server-sent events the way a strict client would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        out = []
        for chunk in self.chunks:
            for choice in chunk.get("choices", []):
                if "delta" in choice:
                    out.append(choice["delta"].get("content") or "")
                else:
                    out.append(choice.get("text") or "")
        return "".join(out)

    def finish_reasons(self) -> list[str]:
        return [
            c["finish_reason"]
            for chunk in self.chunks
            for c in chunk.get("choices", [])
            if c.get("finish_reason")
        ]


def parse_sse(lines: list[str]) -> Stream:
    """Fail on anything malformed: data after [DONE], non-JSON payloads, mixed ids."""
    stream = Stream()
    for line in lines:
        if not line.strip():
            continue
        assert line.startswith("data: "), f"not an SSE data line: {line!r}"
        assert not stream.done, "data after [DONE]"
        payload = line[len("data: ") :]
        if payload == "[DONE]":
            stream.done = True
            continue
        obj = json.loads(payload)
        if "error" in obj:
            stream.errors.append(obj["error"])
        else:
            stream.chunks.append(obj)
    ids = {chunk["id"] for chunk in stream.chunks}
    assert len(ids) <= 1, f"chunks of several completions mixed in one stream: {ids}"
    return stream
