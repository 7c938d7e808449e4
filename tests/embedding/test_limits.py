"""One request cannot block the service: bodies and inputs are bounded before any work;
with keys configured every route but the probes needs one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from embedding.app import create_app
from embedding.runtime import Runtime
from embedding.settings import EmbeddingSettings
from p2.core.keys import Keyring
from p2.core.settings import CoreSettings
from testkit.openai_errors import assert_openai_error
from tests.embedding.conftest import ClientFactory


def test_a_body_over_the_limit_is_413(client_for: ClientFactory, int8_runtime: Runtime) -> None:
    with client_for(int8_runtime, max_body_bytes=4096) as client:
        fine = client.post("/v1/embeddings", json={"input": "x" * 3000})
        declared = client.post("/v1/embeddings", json={"input": "x" * 5000})

        def pieces() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"input": "'
            for _ in range(1000):
                yield b"y" * 1024
            yield b'"}'

        streamed = client.post(
            "/v1/embeddings", content=pieces(), headers={"content-type": "application/json"}
        )
    assert fine.status_code == 200
    for refused in (declared, streamed):
        assert_openai_error(refused, 413, contains="EMBEDDING_MAX_BODY_BYTES")


def test_an_input_over_the_character_bound_is_refused_before_tokenizing(
    client_for: ClientFactory, int8_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenized: list[int] = []
    encode = int8_runtime.tokenizer.encode

    def counting(texts: list[str]) -> object:
        tokenized.append(len(texts))
        return encode(texts)

    monkeypatch.setattr(int8_runtime.tokenizer, "encode", counting)
    with client_for(int8_runtime, max_input_chars=1000) as client:
        refused = client.post("/v1/embeddings", json={"input": ["short", "z" * 1001]})
        single = client.post("/v1/embeddings", json={"input": "z" * 1001})
        fine = client.post("/v1/embeddings", json={"input": ["short", "z" * 1000]})
    error = assert_openai_error(refused, 400, code="input_too_long", param="input")
    assert "'input[1]'" in error["message"] and "EMBEDDING_MAX_INPUT_CHARS" in error["message"]
    assert "'input'" in assert_openai_error(single, 400, code="input_too_long")["message"]
    assert fine.status_code == 200
    assert tokenized == [2]  # only the accepted request was tokenized


def test_keys_guard_every_route_but_the_probes(int8_runtime: Runtime, p2_home: Path) -> None:
    app = create_app(
        EmbeddingSettings(),
        CoreSettings(home=p2_home),
        runtime=int8_runtime,
        keyring=Keyring(["sk-user"], ["sk-admin"]),
    )
    body = {"input": "keys"}
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/metrics").status_code == 200
        for method, path in (("POST", "/v1/embeddings"), ("GET", "/v1/models")):
            refused = client.request(method, path, json=body)
            assert_openai_error(refused, 401, code="invalid_api_key")
            for key in ("sk-user", "sk-admin"):
                headers = {"Authorization": f"Bearer {key}"}
                assert client.request(method, path, json=body, headers=headers).status_code == 200
