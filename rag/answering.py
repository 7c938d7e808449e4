"""Answers: retrieve, prompt with numbered sources, generate through the gateway.

Non-streaming answers are the gateway's ``chat.completion`` with ``model`` set
to the name the client asked for and a ``sources`` list added. Streaming
answers relay the gateway's chunks and add ``sources`` to the chunk carrying
``finish_reason`` (once the whole answer, hence its citations, is known).

With ``RAG_CITATIONS=attribute`` each sentence the model left uncited is cited
by the source its words come from (``rag.citations``): inline in a whole
answer, as one last content chunk before ``finish_reason`` in a stream, whose
text is already sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from fastapi.responses import JSONResponse, Response, StreamingResponse

from p2.core.errors import APIError, BadRequest, GatewayTimeout, ServiceUnavailable
from p2.core.sse import DONE, sse, sse_error
from rag.citations import attribute, cited_numbers
from rag.completion_to_chat import chat_from_completion, chunk_from_completion
from rag.identifiers import check_collection
from rag.prompting import (
    COMPLETION_STOP,
    build_messages,
    completion_prompt,
    last_user_index,
    message_text,
    sources_json,
)
from rag.protocol import ChatBody
from rag.retrieval import Result, Retriever
from rag.settings import Citations, PromptStyle, RagSettings

log = logging.getLogger("p2.rag.answering")
MODEL_PREFIX = "rag/"
_OURS = {"model", "messages", "stream", "collection", "top_k", "mode"}


def collection_of(body: ChatBody) -> str:
    if body.collection:
        return check_collection(body.collection)
    if body.model and body.model.startswith(MODEL_PREFIX):
        return check_collection(body.model.removeprefix(MODEL_PREFIX), "model")
    raise BadRequest(
        "Say which collection to answer from: 'collection', or 'model' as 'rag/<collection>'.",
        param="collection",
        code="missing_collection",
    )


def _upstream_error(response: httpx.Response, body: bytes) -> APIError:
    """A client error of the gateway is passed on with its message (it is about the
    request); anything else is RAG's problem, told without the gateway's words."""
    try:
        message = str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body[:300].decode(errors="replace")
    status = response.status_code
    if status in (400, 404, 413, 422, 429):
        return APIError(f"The gateway refused the request: {message}", status_code=status)
    log.warning("the gateway answered HTTP %d: %s", status, message)
    if status in (401, 403):
        return APIError(
            "The gateway refused RAG's credentials (RAG_GATEWAY_API_KEY or P2_SERVICE_KEY).",
            status_code=502,
            error_type="api_error",
            code="gateway_refused_key",
        )
    return APIError(f"The gateway failed (HTTP {status}).", status_code=502, code="gateway_error")


def _stream_error(chunk: dict[str, Any]) -> bytes:
    """The gateway's error event, its type and code kept, its words only in the log."""
    error = chunk.get("error")
    error = error if isinstance(error, dict) else {}
    log.warning("the gateway's stream ended with an error: %s", error.get("message"))
    code = error.get("code")
    return sse_error(
        "The chat model's answer failed mid-stream"
        + (f" ({code})." if isinstance(code, str) else "."),
        str(error.get("type") or "api_error"),
        code if isinstance(code, str) else None,
    )


def _content_chunk(like: dict[str, Any], text: str) -> dict[str, Any]:
    """A content-only chunk shaped like ``like`` (same id, model, created)."""
    delta = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return {**{k: v for k, v in like.items() if k != "sources"}, "choices": [delta]}


@dataclass(frozen=True)
class _Turn:
    """One question being answered: the name the client used, its words, its sources."""

    public: str
    question: str
    results: list[Result]


class Answerer:
    def __init__(
        self, client: httpx.AsyncClient, retriever: Retriever, settings: RagSettings
    ) -> None:
        self.client = client
        self.retriever = retriever
        self.settings = settings

    def _headers(self) -> dict[str, str]:
        key = self.settings.gateway_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def chat(self, body: ChatBody) -> Response:
        collection = collection_of(body)
        at = last_user_index(body.messages)
        if at is None:
            raise BadRequest("The messages contain no user question.", param="messages")
        question = message_text(body.messages[at])
        results = await self.retriever.query(collection, question, body.top_k, body.mode)
        extra = {k: v for k, v in (body.model_extra or {}).items() if k not in _OURS}
        upstream = {**extra, "model": self.settings.llm_model, "stream": body.stream}
        if self.settings.prompt_style is PromptStyle.COMPLETION:
            path = "/v1/completions"
            upstream["prompt"] = completion_prompt(body.messages, at, results)
            upstream.setdefault("stop", list(COMPLETION_STOP))
        else:
            path = "/v1/chat/completions"
            upstream["messages"] = build_messages(body.messages, at, results)
        public = body.model or f"{MODEL_PREFIX}{collection}"
        turn = _Turn(public, question, results)
        request = self.client.build_request("POST", path, json=upstream, headers=self._headers())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise GatewayTimeout("The gateway did not answer in time.") from exc
        except httpx.TransportError as exc:
            log.warning("the gateway at %s is unreachable: %r", self.settings.gateway_url, exc)
            raise ServiceUnavailable(
                "The gateway is unreachable.", code="gateway_unavailable"
            ) from exc
        if response.status_code != 200:
            content = await response.aread()
            await response.aclose()
            raise _upstream_error(response, content)
        if body.stream:
            return StreamingResponse(self._relay(response, turn), media_type="text/event-stream")
        return await self._complete(response, turn)

    def _cite(self, turn: _Turn, answer: str) -> tuple[str, str, list[dict[str, Any]]]:
        """The answer with citations added, the added part alone, and the sources list."""
        if self.settings.citations is Citations.MODEL:
            cited = cited_numbers(answer, len(turn.results))
            return answer, "", sources_json(turn.results, cited)
        texts = [r.text for r in turn.results]
        done = attribute(answer, texts, turn.question, self.retriever.engine.bm25)
        return done.text, done.suffix, sources_json(turn.results, done.cited)

    async def _complete(self, response: httpx.Response, turn: _Turn) -> JSONResponse:
        try:
            data = orjson.loads(await response.aread())
            if self.settings.prompt_style is PromptStyle.COMPLETION:
                data = chat_from_completion(data)
            message = data["choices"][0]["message"]
            answer = str(message.get("content") or "")
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise APIError("The gateway answered an unexpected body.", status_code=502) from exc
        except httpx.HTTPError as exc:
            raise APIError("The gateway connection failed mid-answer.", status_code=502) from exc
        finally:
            await response.aclose()
        message["content"], _, sources = self._cite(turn, answer)
        data["model"] = turn.public
        data["sources"] = sources
        return JSONResponse(data)

    async def _relay(self, response: httpx.Response, turn: _Turn) -> AsyncIterator[bytes]:
        parts: list[str] = []
        sent_sources = False
        completion = self.settings.prompt_style is PromptStyle.COMPLETION
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if "error" in chunk:
                    yield _stream_error(chunk)
                    return
                if completion:
                    chunk = chunk_from_completion(chunk, first=not parts)
                chunk["model"] = turn.public
                finished = False
                for choice in chunk.get("choices") or []:
                    parts.append(str((choice.get("delta") or {}).get("content") or ""))
                    finished = finished or choice.get("finish_reason") is not None
                if finished and not sent_sources:
                    _, suffix, chunk["sources"] = self._cite(turn, "".join(parts))
                    if suffix:
                        yield sse(_content_chunk(chunk, suffix))
                    sent_sources = True
                yield sse(chunk)
        except httpx.HTTPError as exc:
            log.warning("gateway stream broke: %s", exc)
            yield sse_error("The gateway stream broke mid-answer.")
            return
        finally:
            await response.aclose()
        if not sent_sources:
            _, suffix, sources = self._cite(turn, "".join(parts))
            base = {"object": "chat.completion.chunk", "model": turn.public}
            if suffix:
                yield sse({**base, "choices": [{"index": 0, "delta": {"content": suffix}}]})
            yield sse({**base, "choices": [], "sources": sources})
        yield DONE
