"""Schemathesis against the gateway's own OpenAPI document: bad input never answers >= 500,
and every answer matches the document."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testkit.threadserver import ThreadServer
from tests.gateway.conftest import ADMIN_KEY, KEY, make_config, running_gateway
from tests.gateway.upstreams import ScriptedBackend, serve

pytest.importorskip("schemathesis")

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


def service_app(chat: ScriptedBackend) -> Starlette:
    """RAG and the job service as the fuzzer meets them: a 200 for anything sent to their
    APIs, and RAG's chat endpoint (``rag/<collection>``) answered by a scripted backend."""

    async def anything(request: Request) -> Response:
        async for _ in request.stream():
            pass
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", chat, methods=["GET"]),
            Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


@pytest.fixture
def upstreams() -> Iterator[tuple[ScriptedBackend, ScriptedBackend, ScriptedBackend, str]]:
    """Answers for anything the gateway forwards: two backends, an embedder, a service."""
    chat, code, embed = (
        ScriptedBackend(model="chat"),
        ScriptedBackend(model="code"),
        ScriptedBackend(),
    )
    servers = [serve(chat), serve(code), serve(embed)]
    other = ThreadServer(service_app(chat), timeout_graceful_shutdown=1).start()
    try:
        yield chat, code, embed, other.url
    finally:
        other.stop()
        for server in servers:
            server.stop()


@pytest.mark.parametrize("key", [KEY, ADMIN_KEY], ids=["user", "admin"])
def test_schemathesis_finds_nothing(
    upstreams: tuple[ScriptedBackend, ScriptedBackend, ScriptedBackend, str],
    key: str,
    tmp_path: Path,
) -> None:
    chat, code, embed, service = upstreams
    config = make_config(
        {"chat": [(chat.url, "chat"), (code.url, "code")], "code": [(code.url, "code")]}
    )
    with running_gateway(
        config, embedding_url=embed.url, rag_url=service, jobs_url=service, max_upload_bytes=65536
    ) as gw:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{gw.url}/openapi.json",
                "--checks", CHECKS,
                "-H", f"Authorization: Bearer {key}",
                "--max-examples", "15",
                "--seed", "20260101",
                "--workers", "1",
                "--no-color",
                "--generation-database", "none",
                "--report-dir", str(tmp_path),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
