"""Bad input is a 4xx in OpenAI's error format, never a 500 or a hang."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from embedding.runtime import Runtime
from testkit.openai_errors import assert_openai_error
from tests.embedding.conftest import ClientFactory

INVALID = "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"input": ""}, "input", "empty string"),
        ({"input": []}, "input", "empty list"),
        ({"input": ["ok", ""]}, "input", "input[1]"),
        ({"input": ["ok", 3]}, "input", "input[1]"),
        ({"input": [101, 2023, 102]}, "input", "Token arrays"),
        ({"input": [[101, 102]]}, "input", "Token arrays"),
        ({"input": 42}, "input", "string or a list of strings"),
        ({"input": {"text": "x"}}, "input", "string or a list of strings"),
        ({"input": None}, "input", "string or a list of strings"),
        ({}, "input", "input"),
        ({"input": "x", "dimensions": 128}, "dimensions", "384"),
        ({"input": "x", "dimensions": "384"}, "dimensions", "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format", "encoding_format"),
        ({"input": "x", "model": 7}, "model", "model"),
    ],
)
def test_bad_fields_are_400(
    client: TestClient, body: dict[str, Any], param: str, needle: str
) -> None:
    response = client.post("/v1/embeddings", json=body)
    assert_openai_error(response, 400, param=param, error_type=INVALID, contains=needle)


def test_token_arrays_have_their_own_code(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": [1, 2, 3]})
    assert_openai_error(response, 400, code="token_input_unsupported", error_type=INVALID)


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/embeddings", content=b'{"input": "x",', headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 400, error_type=INVALID, contains="JSON")


@pytest.mark.parametrize("payload", [b'["x"]', b'"x"', b"null"])
def test_body_that_is_not_an_object_is_400(client: TestClient, payload: bytes) -> None:
    response = client.post(
        "/v1/embeddings", content=payload, headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 400, error_type=INVALID)


def test_too_many_inputs_is_400(client_for: ClientFactory, int8_runtime: Runtime) -> None:
    with client_for(int8_runtime, max_inputs=3) as client:
        assert client.post("/v1/embeddings", json={"input": ["a", "b", "c"]}).status_code == 200
        response = client.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]})
    assert_openai_error(
        response,
        400,
        code="too_many_inputs",
        param="input",
        error_type=INVALID,
        contains="at most 3",
    )


def test_wrong_method_and_path_are_openai_errors(client: TestClient) -> None:
    assert_openai_error(client.get("/v1/embeddings"), 405)
    assert_openai_error(client.post("/v1/nothing", json={}), 404, error_type="not_found_error")
