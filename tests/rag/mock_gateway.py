"""A mock OpenAI chat backend standing in for the gateway: RAG's own behaviour under test.

On chat it answers by quoting the first numbered source of the prompt it
receives and citing it as ``[1]``; on completions, like a base model, it quotes
the excerpt nearest the question and cites nothing. It records every request
so tests can read the prompt.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


def _answer(messages: list[dict[str, Any]]) -> str:
    prompt = str(messages[-1]["content"])
    match = re.search(r"^\[1\] \(from [^)]*\) (.+)$", prompt, re.MULTILINE)
    if match is None:
        return "I do not know."
    sentence = match.group(1).split(". ")[0].strip().rstrip(".")
    return f"{sentence} [1]."


def _completion_answer(prompt: str) -> str:
    excerpts: list[str] = re.findall(r"^\[\d+\] \([^)]*\) (.+)$", prompt, re.MULTILINE)
    if not excerpts:
        return " I do not know."
    return " " + excerpts[-1].split(". ")[0].strip().rstrip(".") + "."


def mock_gateway_app(api_key: str | None = None) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        body = await request.json()
        app.state.requests.append(body)
        text = _answer(body["messages"])
        base = {"id": "chatcmpl-mock", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
            )

        async def events() -> Any:
            obj = {**base, "object": "chat.completion.chunk"}
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}}
            yield b"data: " + orjson.dumps({**obj, "choices": [{**first, "finish_reason": None}]})
            yield b"\n\n"
            for word in text.split(" "):
                delta = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
                yield b"data: " + orjson.dumps({**obj, "choices": [delta]}) + b"\n\n"
            last = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield b"data: " + orjson.dumps({**obj, "choices": [last]}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append(body)
        text = _completion_answer(str(body["prompt"]))
        base = {"id": "cmpl-mock", "created": int(time.time()), "model": body["model"]}
        obj = {**base, "object": "text_completion"}
        if not body.get("stream"):
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            return JSONResponse({**obj, "choices": [choice], "usage": usage})

        async def events() -> Any:
            for word in text.split(" ")[1:]:
                choice = {"index": 0, "text": " " + word, "finish_reason": None}
                yield b"data: " + orjson.dumps({**obj, "choices": [choice]}) + b"\n\n"
            last = {"index": 0, "text": "", "finish_reason": "stop"}
            yield b"data: " + orjson.dumps({**obj, "choices": [last]}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
