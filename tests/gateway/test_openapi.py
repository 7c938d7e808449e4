"""``GET /openapi.json``: a valid OpenAPI 3.1 document covering every route the gateway serves."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route

from tests.gateway.conftest import RunningGateway

openapi_spec_validator = pytest.importorskip("openapi_spec_validator")


def test_the_document_is_open_and_valid_openapi(gateway: RunningGateway) -> None:
    response = httpx.get(f"{gateway.url}/openapi.json")  # no key: it is open
    assert response.status_code == 200
    document = response.json()
    openapi_spec_validator.validate(document)
    assert document["openapi"].startswith("3.1")
    chat = document["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["properties"]["model"]["enum"] == ["chat", "code"]  # the configured groups


def test_the_document_covers_every_route_and_method(gateway: RunningGateway) -> None:
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    served = set()
    for route in gateway.app.routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((path, method.lower()))
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert served == documented


def test_open_routes_need_no_key_in_the_document(gateway: RunningGateway) -> None:
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert paths["/health/ready"]["get"]["security"] == []
    assert "401" not in paths["/health"]["get"]["responses"]
    assert "security" not in paths["/v1/chat/completions"]["post"]  # the document's default
    assert paths["/v1/rag/collections/{path}"]["delete"]["description"] == "Needs an admin key."
