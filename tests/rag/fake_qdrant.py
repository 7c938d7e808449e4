"""A Qdrant REST server for tests: the REST routes RAG uses, on qdrant-client's local engine.

No Qdrant server binary can be installed here, so this stands in for one: real
HTTP, real qdrant-client on the RAG side, Qdrant's own JSON models on the wire.
``fail_next`` makes the next requests answer a given HTTP status (503, 429, 400).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client import models as qm


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"result": result, "status": "ok", "time": 0.0})


def _fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": {"error": message}, "time": 0.0}, status_code=status)


def _dump(items: list[Any]) -> list[Any]:
    return [item.model_dump(mode="json") for item in items]


def fake_qdrant_app() -> FastAPI:
    local = QdrantClient(location=":memory:")
    app = FastAPI()
    app.state.fail_next = []
    app.state.requests = 0
    done = {"operation_id": 0, "status": "completed"}

    @app.middleware("http")
    async def inject(request: Request, call_next: Any) -> Any:
        app.state.requests += 1
        if app.state.fail_next:
            return _fail(app.state.fail_next.pop(0), "injected failure")
        try:
            return await call_next(request)
        except ValueError as exc:
            if "not found" in str(exc):
                return _fail(404, f"Not found: {exc}")
            return _fail(400, f"Bad request: {exc}")

    @app.get("/collections")
    def collections() -> JSONResponse:
        names = [c.name for c in local.get_collections().collections]
        return _ok({"collections": [{"name": n} for n in names]})

    @app.get("/collections/{name}/exists")
    def exists(name: str) -> JSONResponse:
        return _ok({"exists": local.collection_exists(name)})

    @app.put("/collections/{name}")
    def create(name: str, body: dict[str, Any]) -> JSONResponse:
        if local.collection_exists(name):
            return _fail(409, f"Wrong input: Collection `{name}` already exists!")
        spec = qm.CreateCollection.model_validate(body)
        local.create_collection(
            name, vectors_config=spec.vectors, sparse_vectors_config=spec.sparse_vectors
        )
        return _ok(True)

    @app.delete("/collections/{name}")
    def drop(name: str) -> JSONResponse:
        return _ok(local.delete_collection(name))

    @app.put("/collections/{name}/index")
    def index(name: str) -> JSONResponse:
        return _ok(done)

    @app.put("/collections/{name}/points")
    def upsert(name: str, body: dict[str, Any]) -> JSONResponse:
        ops = TypeAdapter(qm.PointInsertOperations).validate_python(body)
        assert isinstance(ops, qm.PointsList)
        local.upsert(name, points=ops.points)
        return _ok(done)

    @app.post("/collections/{name}/points")
    def retrieve(name: str, body: dict[str, Any]) -> JSONResponse:
        spec = qm.PointRequest.model_validate(body)
        return _ok(_dump(local.retrieve(name, ids=spec.ids, with_payload=True)))

    @app.post("/collections/{name}/points/delete")
    def delete(name: str, body: dict[str, Any]) -> JSONResponse:
        selector = TypeAdapter(qm.PointsSelector).validate_python(body)
        local.delete(name, points_selector=selector)
        return _ok(done)

    @app.post("/collections/{name}/points/count")
    def count(name: str, body: dict[str, Any]) -> JSONResponse:
        spec = qm.CountRequest.model_validate(body)
        return _ok({"count": local.count(name, count_filter=spec.filter, exact=True).count})

    @app.post("/collections/{name}/points/scroll")
    def scroll(name: str, body: dict[str, Any]) -> JSONResponse:
        spec = qm.ScrollRequest.model_validate(body)
        points, after = local.scroll(
            name,
            scroll_filter=spec.filter,
            limit=spec.limit or 10,
            offset=spec.offset,
            with_payload=True,
        )
        return _ok({"points": _dump(points), "next_page_offset": after})

    @app.post("/collections/{name}/points/query")
    def query(name: str, body: dict[str, Any]) -> JSONResponse:
        spec = qm.QueryRequest.model_validate(body)
        answer = local.query_points(
            name,
            query=spec.query,
            using=spec.using,
            prefetch=spec.prefetch,
            query_filter=spec.filter,
            limit=spec.limit or 10,
            with_payload=True,
        )
        return _ok({"points": _dump(answer.points)})

    return app
