"""The endpoints' logic: parse, route to a model group, forward, answer.

Answers name model groups only; backends (addresses, states, last errors)
are shown to admin keys alone (``gateway.access.Visibility``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway import protocol
from gateway.backends import rename
from gateway.disconnect import CLIENT_CLOSED, ClientWatch
from gateway.finetuned import FineTunedModels
from gateway.forwarding import Answer, Call, Forwarder
from gateway.metrics import GatewayMetrics
from gateway.resolve import Resolver, Target
from gateway.routing import Registry
from gateway.streaming import StreamRelay
from p2.core.errors import NotFound, error_body
from p2.core.openai import model_card, model_list, unknown_model

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
EMBEDDING_GROUP = "\x00embeddings"  # internal group names, never a client's model
RAG_GROUP = "\x00rag"  # serves every ``rag/<collection>`` model
INTERNAL_GROUPS = frozenset({EMBEDDING_GROUP, RAG_GROUP})
RAG_PREFIX = "rag/"

T = TypeVar("T")


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


def relay_answer(answer: Answer) -> Response:
    headers = {"content-type": answer.content_type.decode("latin-1")}
    if answer.retry_after is not None:
        headers["retry-after"] = answer.retry_after.decode("latin-1")
    body = rename(answer.body, answer.renames) if answer.status == 200 else answer.body
    return Response(body, answer.status, headers=headers)


class GatewayService:
    """The endpoints' logic, independent of how routes are declared."""

    def __init__(
        self,
        registry: Registry,
        forwarder: Forwarder,
        metrics: GatewayMetrics,
        *,
        request_timeout: float,
        max_body_bytes: int,
        stream_idle_timeout: float,
        embeddings: bool,
        finetuned: FineTunedModels | None = None,
    ) -> None:
        self.registry = registry
        self.forwarder = forwarder
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.max_body_bytes = max_body_bytes
        self.stream_idle_timeout = stream_idle_timeout
        self.embeddings_enabled = embeddings
        self.finetuned = finetuned
        self.created = int(time.time())
        self.resolver = Resolver(
            (g for g in registry.groups if g not in INTERNAL_GROUPS),
            registry.router.model_group_alias,
        )
        self._plain = frozenset(
            g for g in registry.groups if g not in INTERNAL_GROUPS and "*" not in g
        )

    def known_models(self) -> list[str]:
        """The names ``/v1/models`` lists: the groups, then the aliases that are not hidden."""
        groups = [g for g in self.registry.groups if g not in INTERNAL_GROUPS and "*" not in g]
        return groups + [a for a in self.resolver.listed_aliases if a not in self._plain]

    def _group(self, model: str, path: str) -> tuple[str, Target | None]:
        """The group serving ``model`` (and how, when it is not the group's own name);
        ``rag/<collection>`` (chat only) goes to the RAG service as is."""
        if model in self._plain:
            return model, None
        rag = RAG_GROUP in self.registry.groups and path == CHAT
        if rag and model.startswith(RAG_PREFIX):
            return RAG_GROUP, None
        target = self.resolver.resolve(model)
        if target is None:
            known = self.known_models()
            if rag:
                known.append(f"{RAG_PREFIX}<collection>")
            raise unknown_model(model, known)
        return target.group, target

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await protocol.read_body(request.scope, request.receive, self.max_body_bytes)
        return protocol.parse_json(raw)

    def _call(
        self,
        group: str,
        path: str,
        body: dict[str, Any],
        target: Target | None = None,
        stream: bool = False,
    ) -> Call:
        now = time.monotonic()
        return Call(group, path, body, now, now + self.request_timeout, set(), target, stream)

    async def _await_backend(self, watch: ClientWatch, pending: Awaitable[T]) -> T | None:
        """``pending``, or None if the client went away meanwhile (which dropped the
        backend request)."""
        try:
            return await pending
        except asyncio.CancelledError:
            if watch.claimed():
                return None
            watch.stop()
            raise
        except BaseException:
            watch.stop()
            raise

    async def _generate(
        self, request: Request, path: str, check: Callable[[dict[str, Any]], None]
    ) -> ASGIApp | Response:
        body = await self._body(request)
        group, target = self._group(protocol.require_model(body), path)
        stream = protocol.require_stream_flag(body)
        check(body)
        call = self._call(group, path, body, target, stream)
        watch = ClientWatch(request.receive)
        if not stream:
            answer = await self._await_backend(watch, self.forwarder.complete(call))
            watch.stop()
            if answer is None:
                return Response(status_code=CLIENT_CLOSED)
            self._count_usage(call.label, answer)
            return relay_answer(answer)
        opened = await self._await_backend(watch, self.forwarder.open_stream(call))
        if opened is None:
            return Response(status_code=CLIENT_CLOSED)
        if isinstance(opened, Answer):
            watch.stop()
            return relay_answer(opened)
        return StreamRelay(
            self.forwarder, self.metrics, call, opened, self.stream_idle_timeout, watch
        )

    def _count_usage(self, group: str, answer: Answer) -> None:
        if answer.status != 200:
            return
        try:
            usage = orjson.loads(answer.body).get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return
        if prompt:
            self.metrics.tokens.labels(group, "prompt").inc(prompt)
        if completion:
            self.metrics.tokens.labels(group, "completion").inc(completion)
        answer.deployment.add_tokens(prompt + completion)

    async def chat(self, request: Request) -> ASGIApp | Response:
        return await self._generate(request, CHAT, protocol.check_chat)

    async def completions(self, request: Request) -> ASGIApp | Response:
        return await self._generate(request, COMPLETIONS, protocol.check_completion)

    async def embeddings(self, request: Request) -> Response:
        if not self.embeddings_enabled:
            raise NotFound(
                "Embeddings are not available: no embedding service is configured "
                "(set EMBEDDING_URL).",
                code="model_not_found",
            )
        body = await self._body(request)
        protocol.check_embedding(body)
        watch = ClientWatch(request.receive)
        call = self._call(EMBEDDING_GROUP, EMBEDDINGS, body)
        answer = await self._await_backend(watch, self.forwarder.complete(call))
        watch.stop()
        if answer is None:
            return Response(status_code=CLIENT_CLOSED)
        return relay_answer(answer)

    def _backends(self, group: str) -> list[dict[str, object]]:
        return [d.describe() for d in self.registry.groups[group]]

    async def models(self, *, admin: bool, authorization: bytes | None) -> Response:
        """The model groups and aliases, then the caller's fine-tuned models (from the job
        service); admins also see every group's deployments and their state."""
        cards = []
        for name in self.known_models():
            group = self.resolver.aliases.get(name, name)
            if admin:
                cards.append(model_card(name, self.created, backends=self._backends(group)))
            else:
                cards.append(model_card(name, self.created))
        if self.finetuned is not None:
            listed = {c["id"] for c in cards}
            for card in await self.finetuned.cards(authorization):
                if card["id"] not in listed:
                    listed.add(card["id"])
                    cards.append(card)
        return json_response(model_list(cards))

    def ready(self, *, admin: bool) -> Response:
        """200 when every model group has a healthy backend in rotation, else 503.

        Everyone sees each group's status; admins also see every backend.
        """
        now = time.monotonic()
        groups = {
            group: "ok"
            if any(d.serving(now) for d in self.registry.groups[group])
            else "unavailable"
            for group in self.registry.groups
            if group not in INTERNAL_GROUPS
        }
        down = [group for group, status in groups.items() if status != "ok"]
        payload: dict[str, Any] = {"status": "unavailable" if down else "ok", "models": groups}
        if admin:
            payload["backends"] = {group: self._backends(group) for group in groups}
        if down:
            payload.update(
                error_body(
                    "No healthy backend for model(s): " + ", ".join(down),
                    "service_unavailable_error",
                    code="not_ready",
                )
            )
        return json_response(payload, 503 if down else 200)
