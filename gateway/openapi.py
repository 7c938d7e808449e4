"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``), built as data.

Schemas come from ``gateway.schemas``; the operations are listed here, one
entry per route the app registers (a test holds the two together). The
pass-through routes to other services are described loosely: the service
behind them documents its own API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic.json_schema import models_json_schema

from gateway import schemas
from gateway.passthrough import SERVICE_ROUTES
from p2.core.keys import Access, AccessPolicy
from p2.core.sse import SSE_EVENT_SCHEMA

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[Any]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(schemas.ErrorResponse)}
    if retry:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return response


_KEYED = {
    "401": _error("No key, or an unknown one."),
    "403": _error("The key's scope is too low for this route."),
}
_FORWARDED = {
    "400": _error("Malformed request (the gateway's or the backend's check)."),
    "404": _error("Unknown model."),
    "413": _error("The request body is over GATEWAY_MAX_BODY_BYTES."),
    "429": _error("Every backend is rate limited (the last answer, relayed).", retry=True),
    "500": _error(
        "A backend's own 500, relayed once the request reproduced it (or no backend was left)."
    ),
    "503": _error("No backend of the model group is available.", retry=True),
    "504": _error("No backend answered in time."),
    "default": _error("Any other backend error, relayed as it is."),
}


def _generation(summary: str, body: type[Any], answer: type[Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": _json(body)},
        "responses": {
            "200": {
                "description": "The answer, or with stream: true a stream of server-sent "
                "events ending in data: [DONE].",
                "content": {
                    **_json(answer),
                    "text/event-stream": {"schema": SSE_EVENT_SCHEMA},
                },
            },
            **_KEYED,
            **_FORWARDED,
        },
    }


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {**responses, **_KEYED}}}


def _passthrough_operations() -> dict[str, Any]:
    """``path`` -> operations for every pass-through route: any body, the service's answer."""
    paths: dict[str, Any] = {}
    for route in SERVICE_ROUTES:
        service = route.setting.removesuffix("_URL")
        for template in route.templates:
            path = template.replace(":path}", "}")
            params = (
                [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]
                if "{path}" in path
                else []
            )
            operations: dict[str, Any] = {}
            for method in route.methods:
                operation: dict[str, Any] = {
                    "summary": f"Passed through to the {service} service ({route.setting}).",
                    "parameters": params,
                    "responses": {
                        **_KEYED,
                        "404": _error(f"{route.setting} is not set, or the service says so."),
                        "413": _error("The body is over this route's limit."),
                        "503": _error("The service is not available.", retry=True),
                        "504": _error("The service did not answer in time."),
                        "default": {"description": "The service's own answer."},
                    },
                }
                if method in ("POST", "PUT", "PATCH"):
                    operation["requestBody"] = {
                        "required": False,
                        "content": {"*/*": {"schema": {}}},
                    }
                operations[method.lower()] = operation
            paths[path] = operations
    return paths


def _model_schema(models: Sequence[str], rag: bool, patterns: Sequence[str]) -> dict[str, Any]:
    choices: list[dict[str, Any]] = [{"type": "string", "enum": list(models)}]
    if rag:
        choices.append({"type": "string", "pattern": "^rag/.+"})
    choices.extend({"type": "string", "pattern": p} for p in patterns)
    return choices[0] if len(choices) == 1 else {"anyOf": choices}


def _apply_policy(paths: dict[str, Any], policy: AccessPolicy) -> None:
    """Open operations need no key (and answer no 401/403); the rest need the bearer key."""
    for path, operations in paths.items():
        concrete = path.replace("{path}", "x")
        for method, operation in operations.items():
            need = policy.required(method.upper(), concrete)
            if need is Access.OPEN:
                operation["security"] = []
                for status in _KEYED:
                    operation["responses"].pop(status, None)
            elif need is Access.ADMIN:
                operation["description"] = "Needs an admin key."


def openapi_document(
    models: Iterable[str],
    *,
    rag: bool,
    embeddings: bool,
    policy: AccessPolicy,
    patterns: Sequence[str] = (),
) -> dict[str, Any]:
    """The document for a gateway serving ``models`` (its model groups and aliases) and
    names matching ``patterns`` (fine-tuned models, wildcard groups); ``policy`` says
    which operations are open."""
    models = list(models)
    _, top = models_json_schema(
        [(m, "validation") for m in (*schemas.REQUESTS, *schemas.ANSWERS)], ref_template=_REF
    )
    components: dict[str, Any] = top.get("$defs", {})
    for request, with_rag in (("ChatCompletionRequest", rag), ("CompletionRequest", False)):
        field = components[request]["properties"]["model"]
        components[request]["properties"]["model"] = {
            "description": field["description"],
            **_model_schema(models, with_rag, patterns),
        }
    embeddings_summary = "Embeddings from the embedding service (EMBEDDING_URL)."
    if not embeddings:
        embeddings_summary += " Not configured here: every request gets 404."
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": _generation(
                "Chat completion from the model group's backends, with failover.",
                schemas.ChatCompletionRequest,
                schemas.ChatCompletion,
            )
        },
        "/v1/completions": {
            "post": _generation(
                "Text completion from the model group's backends, with failover.",
                schemas.CompletionRequest,
                schemas.Completion,
            )
        },
        "/v1/embeddings": {
            "post": {
                "summary": embeddings_summary,
                "requestBody": {"required": True, "content": _json(schemas.EmbeddingRequest)},
                "responses": {
                    "200": {
                        "description": "The embeddings.",
                        "content": _json(schemas.EmbeddingList),
                    },
                    **_KEYED,
                    **_FORWARDED,
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "The model groups (admin keys also see their backends).",
                "responses": {
                    "200": {
                        "description": "The model groups.",
                        "content": _json(schemas.ModelList),
                    },
                    **_KEYED,
                },
            }
        },
        **{
            path: _get(
                summary,
                {"200": {"description": "Alive.", "content": _json(schemas.Liveness)}},
            )
            for path, summary in (
                ("/health", "Liveness: 200 while the process runs."),
                ("/health/liveliness", "LiteLLM's liveness path: the same as /health."),
                ("/health/liveness", "LiteLLM's liveness path: the same as /health."),
            )
        },
        **{
            path: _get(
                summary,
                {
                    "200": {
                        "description": "Every group is served.",
                        "content": _json(schemas.Readiness),
                    },
                    "503": {
                        "description": "Some group is not.",
                        "content": _json(schemas.Readiness),
                    },
                },
            )
            for path, summary in (
                ("/health/ready", "Readiness per model group (admin keys also see every backend)."),
                ("/health/readiness", "LiteLLM's readiness path: the same as /health/ready."),
            )
        },
        "/metrics": _get(
            "Prometheus metrics.",
            {
                "200": {
                    "description": "The text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": _get(
            "This document.",
            {
                "200": {
                    "description": "OpenAPI 3.1.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        ),
        **_passthrough_operations(),
    }
    _apply_policy(paths, policy)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "P2 gateway",
            "version": "1",
            "description": "OpenAI-compatible endpoint with priority failover, and the other "
            "P2 services' APIs passed through.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
