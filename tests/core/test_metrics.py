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
