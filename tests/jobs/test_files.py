"""``/v1/files`` through the official openai SDK, plus what the SDK cannot show:
the size limit enforced while streaming, per-user visibility, unknown form fields."""

from __future__ import annotations

import hashlib
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from jobs.app import create_app
from jobs.settings import JobsSettings
from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from testkit.openai_errors import assert_openai_error
from testkit.threadserver import ThreadServer
from tests.jobs.conftest import ADMIN, USER_A, USER_B, bearer, queue_name
from tests.jobs.helpers import RedisServer, wait_for

LIMIT = 100_000


@pytest.fixture
def base(tmp_path: Path, redis_server: RedisServer) -> Iterator[str]:
    settings = JobsSettings.build(
        redis_url=redis_server.url,
        test_models=True,
        queue=queue_name(),
        max_upload_bytes=LIMIT,
        artifact_dir=tmp_path / "artifacts",
    )
    app = create_app(
        settings,
        CoreSettings.build(home=tmp_path),
        keyring=Keyring(users=[USER_A, USER_B], admins=[ADMIN]),
    )
    with ThreadServer(app) as server:
        url = server.url
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 30, "the job API")
        yield url


def _sdk(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def test_the_openai_sdk_uploads_lists_reads_and_deletes(base: str, tmp_path: Path) -> None:
    client = _sdk(base, USER_A)
    data = b"\x89PNG fake image bytes" * 100
    uploaded = client.files.create(file=("cells.png", data, "image/png"), purpose="user_data")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(data)
    assert (uploaded.filename, uploaded.purpose, uploaded.status) == (
        "cells.png",
        "user_data",
        "processed",
    )
    assert (
        uploaded.model_extra and uploaded.model_extra["sha256"] == hashlib.sha256(data).hexdigest()
    )
    assert client.files.retrieve(uploaded.id).bytes == len(data)
    assert client.files.content(uploaded.id).read() == data
    assert [f.id for f in client.files.list()] == [uploaded.id]
    assert (tmp_path / "artifacts" / uploaded.id).read_bytes() == data
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    assert not (tmp_path / "artifacts" / uploaded.id).exists()


def test_another_users_file_does_not_exist_for_them_but_admins_see_it(base: str) -> None:
    uploaded = _sdk(base, USER_A).files.create(file=("a.txt", b"mine"), purpose="user_data")
    other = _sdk(base, USER_B)
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(uploaded.id)
    assert list(other.files.list()) == []
    assert _sdk(base, ADMIN).files.retrieve(uploaded.id).id == uploaded.id


def test_a_file_over_the_limit_is_refused_while_it_streams(base: str, tmp_path: Path) -> None:
    """The 413 comes while the client is still sending: the server stops reading at the limit."""
    port = int(base.rsplit(":", 1)[1])
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {USER_A}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    form = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + _chunk(form))
        for _ in range(2 * LIMIT // 10_000):  # twice the limit, and the body never ends
            sock.sendall(_chunk(b"x" * 10_000))
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "file_too_large" in answer
    incoming = tmp_path / "artifacts" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # says it is large
        declared = head.replace("Transfer-Encoding: chunked", f"Content-Length: {10 * LIMIT}")
        sock.sendall(declared.encode())
        assert sock.recv(65536).decode().startswith("HTTP/1.1 413")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_form_fields_are_checked_by_name(base: str) -> None:
    files = {"file": ("a.txt", io.BytesIO(b"abc"))}
    bad_purpose = httpx.post(
        f"{base}/v1/files", files=files, data={"purpose": "games"}, headers=bearer(USER_A)
    )
    assert_openai_error(bad_purpose, 400, param="purpose", contains="user_data")
    unknown = httpx.post(
        f"{base}/v1/files",
        files={"file": ("a.txt", io.BytesIO(b"abc"))},
        data={"purpose": "user_data", "colour": "red"},
        headers=bearer(USER_A),
    )
    assert_openai_error(unknown, 400, code="unknown_parameter", param="colour")
    missing = httpx.post(f"{base}/v1/files", data={"purpose": "user_data"}, headers=bearer(USER_A))
    assert_openai_error(missing, 400, param="file")


def test_a_job_may_name_only_files_its_caller_can_see(base: str) -> None:
    mine = _sdk(base, USER_A).files.create(file=("a.bin", b"123"), purpose="user_data")
    job = {"task": "test", "model": "echo", "input": {"image_file_id": mine.id}}
    ok = httpx.post(f"{base}/v1/jobs", json=job, headers=bearer(USER_A))
    assert ok.status_code == 201
    refused = httpx.post(f"{base}/v1/jobs", json=job, headers=bearer(USER_B))
    assert_openai_error(refused, 400, code="file_not_found", param="input.image_file_id")
    nested = {"task": "test", "model": "echo", "input": {"parts": [{"file_ids": ["file-x"]}]}}
    response = httpx.post(f"{base}/v1/jobs", json=nested, headers=bearer(USER_A))
    assert_openai_error(response, 400, param="input.parts[0].file_ids[0]")
