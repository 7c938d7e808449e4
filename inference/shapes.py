"""OpenAI response objects for one request: full answers, stream chunks, logprobs, usage."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from inference.decoding import Piece
from inference.engines.base import TokenLogprob
from inference.tools import Call

Kind = Literal["chat", "completion"]
TOOL_CALLS = "tool_calls"


class Shaper:
    """Builds one request's response objects; ``piece`` gives a token id's bytes."""

    def __init__(self, kind: Kind, model: str, piece: Callable[[int], bytes]) -> None:
        self.kind = kind
        self.model = model
        self.created = int(time.time())
        self.id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        self._piece = piece

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    # -- logprobs ------------------------------------------------------------

    def _token(self, token: int) -> tuple[str, list[int]]:
        raw = self._piece(token)
        return raw.decode("utf-8", "replace"), list(raw)

    def _chat_entry(self, logprob: TokenLogprob) -> dict[str, Any]:
        text, raw = self._token(logprob.token)
        top = []
        for token, value in logprob.top:
            alt_text, alt_raw = self._token(token)
            top.append({"token": alt_text, "logprob": value, "bytes": alt_raw})
        return {"token": text, "logprob": logprob.logprob, "bytes": raw, "top_logprobs": top}

    def chat_logprobs(self, entries: list[tuple[int, TokenLogprob]]) -> dict[str, Any]:
        return {"content": [self._chat_entry(lp) for _, lp in entries], "refusal": None}

    def completion_logprobs(self, entries: list[tuple[int, TokenLogprob]]) -> dict[str, Any]:
        tokens, values, tops, offsets = [], [], [], []
        for offset, lp in entries:
            text, _ = self._token(lp.token)
            tokens.append(text)
            values.append(lp.logprob)
            top = {self._token(token)[0]: value for token, value in lp.top}
            top.setdefault(text, lp.logprob)  # OpenAI: the sampled token is always listed
            tops.append(top)
            offsets.append(offset)
        return {
            "tokens": tokens,
            "token_logprobs": values,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    def _logprobs(self, entries: list[tuple[int, TokenLogprob]] | None) -> dict[str, Any] | None:
        if entries is None:
            return None
        if self.kind == "chat":
            return self.chat_logprobs(entries)
        return self.completion_logprobs(entries)

    # -- full answers ----------------------------------------------------------

    def choice(
        self,
        index: int,
        text: str,
        calls: list[Call],
        finish: str,
        logprobs: list[tuple[int, TokenLogprob]] | None,
    ) -> dict[str, Any]:
        if self.kind == "completion":
            return {
                "index": index,
                "text": text,
                "logprobs": self._logprobs(logprobs),
                "finish_reason": finish,
            }
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["content"] = text.strip() or None
            message["tool_calls"] = [call.message() for call in calls]
        return {
            "index": index,
            "message": message,
            "logprobs": self._logprobs(logprobs),
            "finish_reason": finish,
        }

    def full(self, choices: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
        obj = "chat.completion" if self.kind == "chat" else "text_completion"
        return {**self._envelope(obj), "choices": choices, "usage": usage}

    # -- stream chunks ---------------------------------------------------------

    def chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._envelope(obj), "choices": choices}

    def opening(self, index: int) -> dict[str, Any]:
        """A chat stream's first chunk for a choice: the assistant role."""
        return {
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }

    def delta(
        self, index: int, piece: Piece, calls_so_far: int, with_logprobs: bool
    ) -> list[dict[str, Any]]:
        """Stream choices for one piece: its text (with its logprobs), then each new call as
        OpenAI streams it: id and name first, then the arguments."""
        logprobs = self._logprobs(piece.logprobs) if with_logprobs else None
        if self.kind == "completion":
            return [
                {"index": index, "text": piece.text, "logprobs": logprobs, "finish_reason": None}
            ]
        out = []
        if piece.text or logprobs is not None:
            out.append(
                {
                    "index": index,
                    "delta": {"content": piece.text},
                    "logprobs": logprobs,
                    "finish_reason": None,
                }
            )
        for n, call in enumerate(piece.calls, start=calls_so_far):
            head = {"index": n, "id": call.id, "type": "function"}
            for delta in (
                {**head, "function": {"name": call.name, "arguments": ""}},
                {"index": n, "function": {"arguments": call.arguments}},
            ):
                out.append(
                    {
                        "index": index,
                        "delta": {"tool_calls": [delta]},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                )
        return out

    def closing(self, index: int, finish: str) -> dict[str, Any]:
        if self.kind == "completion":
            return {"index": index, "text": "", "logprobs": None, "finish_reason": finish}
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self.chunk([]), "usage": usage}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
