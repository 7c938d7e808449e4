"""The hardening issue's live checks, rerun on a whole keyed stack (tiny models, real services).

Every port refuses a request without a key, admin routes refuse a user key, one huge
message is a fast 4xx that hurts nobody else's stream, nothing internal leaks, a drop
deletes only a collection, and no process outlives its parent.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inference.build import find_llama_server
from testkit.openai_errors import assert_openai_error
from testkit.stack import ADMIN_KEY, USER_KEY, Stack, running_stack

pytestmark = pytest.mark.e2e

USER = {"Authorization": f"Bearer {USER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    extra = {"P2_HEALTH_INTERVAL": "1", "P2_HEALTH_TIMEOUT": "2", "P2_HEALTH_RETRIES": "2"}
    if find_llama_server() is not None:
        extra["CODE_ENGINE"] = "llama-server"  # a native child, to check it dies with its parent
    with running_stack(tmp_path_factory.mktemp("hardening"), **extra) as running:
        yield running


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ", 1)[1][0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(") ", 1)[1].split()
            except (FileNotFoundError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_every_port_refuses_a_request_without_a_key(stack: Stack) -> None:
    routes = {
        "gateway": ("POST", "/v1/chat/completions"),
        "chat": ("POST", "/v1/chat/completions"),
        "code": ("POST", "/v1/completions"),
        "embedding": ("POST", "/v1/embeddings"),
        "rag": ("POST", "/v1/rag/query"),
        "jobs": ("GET", "/v1/jobs"),
    }
    for service, (method, path) in routes.items():
        response = httpx.request(method, stack.url(service) + path, json={}, timeout=10)
        assert_openai_error(response, 401, code="invalid_api_key")
        assert httpx.get(stack.url(service) + "/health", timeout=10).status_code == 200, service


def test_admin_routes_refuse_a_user_key(stack: Stack) -> None:
    docs = {"documents": [{"id": "a", "text": "hello"}]}
    for base in (stack.url("rag"), stack.url("gateway")):
        url = f"{base}/v1/rag/collections/handbook/documents"
        assert_openai_error(httpx.post(url, json=docs, headers=USER, timeout=30), 403)
        drop = httpx.delete(f"{base}/v1/rag/collections/handbook", headers=USER, timeout=30)
        assert_openai_error(drop, 403)


def _stream(url: str, outcome: dict[str, object]) -> None:
    body = {**CHAT, "max_tokens": 64, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", url, json=body, headers=USER, timeout=120) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    outcome["status"] = response.status_code
    outcome["done"] = bool(events) and events[-1] == "data: [DONE]"
    outcome["errors"] = [e for e in events if '"error"' in e]


def test_a_huge_message_is_a_fast_4xx_that_hurts_no_other_stream(stack: Stack) -> None:
    url = stack.url("gateway") + "/v1/chat/completions"
    outcome: dict[str, object] = {}
    streaming = threading.Thread(target=_stream, args=(url, outcome))
    streaming.start()
    time.sleep(0.2)
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * 3_800_000}]}
    started = time.monotonic()
    response = httpx.post(url, json=huge, headers=USER, timeout=60)
    took = time.monotonic() - started
    streaming.join(120)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert took < 2.0, f"the refusal took {took:.2f}s"
    assert outcome == {"status": 200, "done": True, "errors": []}
    metrics = httpx.get(stack.url("gateway") + "/metrics", timeout=10).text
    up = [line for line in metrics.splitlines() if line.startswith("p2_gateway_backend_up{")]
    assert up and all(line.endswith(" 1.0") for line in up), up


def test_nothing_internal_leaks_into_open_or_user_answers(stack: Stack) -> None:
    hosts = ("127.0.0.1", "localhost", "Errno", "Traceback")
    answers = [
        httpx.get(stack.url("gateway") + "/health/ready", timeout=10),
        httpx.get(stack.url("rag") + "/health/ready", timeout=10),
        httpx.get(stack.url("gateway") + "/v1/models", headers=USER, timeout=10),
        httpx.post(
            stack.url("gateway") + "/v1/chat/completions",
            json={**CHAT, "model": "nope"},
            headers=USER,
            timeout=10,
        ),
    ]
    for answer in answers:
        assert not any(h in answer.text for h in hosts), answer.text[:500]
        ports = {stack.env[f"{name}_PORT"] for name in ("CHAT", "CODE", "RAG", "EMBEDDING")}
        assert not any(f":{port}" in answer.text for port in ports), answer.text[:500]


def test_dropping_a_directory_that_is_no_collection_is_a_404_and_keeps_it(stack: Stack) -> None:
    stranger = stack.home / "qdrant" / "backups"
    stranger.mkdir(parents=True, exist_ok=True)
    (stranger / "keep.txt").write_text("precious")
    drop = httpx.delete(
        stack.url("gateway") + "/v1/rag/collections/backups", headers=ADMIN, timeout=30
    )
    assert_openai_error(drop, 404)
    assert (stranger / "keep.txt").read_text() == "precious"


def test_no_llama_server_outlives_its_inference_parent(stack: Stack) -> None:
    if stack.env.get("CODE_ENGINE") != "llama-server":
        pytest.skip("llama-server not built")
    state = json.loads((stack.home / "run" / "state.json").read_text())
    parent = state["services"]["inference-code"]["pid"]
    natives = _children(parent)
    assert natives, "inference-code runs no llama-server child"
    os.kill(parent, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in natives) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in natives), "llama-server orphaned"


def test_no_service_outlives_a_killed_supervisor(stack: Stack) -> None:
    state = json.loads((stack.home / "run" / "state.json").read_text())
    services = [s["pid"] for s in state["services"].values() if s["pid"]]
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in services) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in services)
