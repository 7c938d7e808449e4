from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, generate_latest

from p2.core.health import Readiness, health_router
from p2.core.metrics import CountRequests


async def test_requests_are_counted_by_route_template_not_raw_path() -> None:
    registry = CollectorRegistry()
    counter = Counter("demo_requests", "demo", ["path", "status"], registry=registry)
    app = FastAPI()
    app.include_router(health_router(Readiness()))

    @app.get("/items/{name}")
    async def item(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_middleware(CountRequests, counter=counter)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for name in ("a", "b", "c"):
            await client.get(f"/items/{name}")
        await client.get("/nowhere")
        await client.get("/health")
    text = generate_latest(registry).decode()
    assert 'demo_requests_total{path="/items/{name}",status="200"} 3.0' in text
    assert 'demo_requests_total{path="unmatched",status="404"} 1.0' in text
    assert "/health" not in text


def test_refused_requests_are_counted_under_their_route() -> None:
    from fastapi import APIRouter
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from starlette.testclient import TestClient

    from p2.core.app import service_app
    from p2.core.keys import Keyring

    router = APIRouter()

    @router.get("/v1/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    registry = CollectorRegistry()
    requests = Counter("p2_demo_requests", "x", ["route", "status"], registry=registry)
    app = service_app(
        "demo",
        routers=[router],
        registry=registry,
        requests=requests,
        keyring=Keyring(users=["sk-u"]),
    )
    client = TestClient(app)
    client.get("/v1/things/a")  # no key: 401
    client.get("/v1/things/b", headers={"Authorization": "Bearer sk-u"})
    client.get("/nowhere", headers={"Authorization": "Bearer sk-u"})
    text = generate_latest(registry).decode()
    assert 'p2_demo_requests_total{route="/v1/things/{name}",status="401"} 1.0' in text
    assert 'p2_demo_requests_total{route="/v1/things/{name}",status="200"} 1.0' in text
    assert 'p2_demo_requests_total{route="unmatched",status="404"} 1.0' in text
