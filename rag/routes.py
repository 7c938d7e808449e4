"""HTTP routes of the RAG service (which key each needs: ``rag.access``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from p2.core.openai import model_card, model_list
from p2.core.sse import STREAM_RESPONSES
from rag.answering import MODEL_PREFIX, Answerer
from rag.identifiers import check_collection
from rag.indexing import Indexer
from rag.protocol import ChatBody, Outcome, QueryBody
from rag.retrieval import Retriever
from rag.uploads import Uploads

MODEL_HELP = (
    "the embedding model of a new collection (default RAG_EMBEDDING_MODEL); an existing "
    "collection keeps the one it was built with"
)


def build_router(
    indexer: Indexer,
    retriever: Retriever,
    answerer: Answerer,
    uploads: Uploads,
) -> APIRouter:
    router = APIRouter()

    async def index(
        collection: str, request: Request, embedding_model: str | None
    ) -> dict[str, Any]:
        check_collection(collection)  # before reading a byte of the body
        docs = await uploads.documents(request)
        outcomes = await indexer.index(collection, docs, embedding_model)
        return {
            "collection": collection,
            "documents": [o.as_json() for o in outcomes],
            "indexed": sum(o.status is Outcome.INDEXED for o in outcomes),
            "unchanged": sum(o.status is Outcome.UNCHANGED for o in outcomes),
        }

    @router.post("/index")
    async def post_index(
        request: Request,
        collection: str = Query(...),
        embedding_model: str | None = Query(None, description=MODEL_HELP),
    ) -> dict[str, Any]:
        """The operators' guide endpoint: the same as POST /v1/rag/collections/{name}/documents."""
        return await index(collection, request, embedding_model)

    @router.post("/v1/rag/collections/{name}/documents")
    async def post_documents(
        name: str,
        request: Request,
        embedding_model: str | None = Query(None, description=MODEL_HELP),
    ) -> dict[str, Any]:
        return await index(name, request, embedding_model)

    @router.get("/v1/rag/collections")
    async def list_collections() -> dict[str, Any]:
        return {"object": "list", "data": await indexer.list_collections()}

    @router.get("/v1/rag/collections/{name}")
    async def get_collection(name: str) -> dict[str, Any]:
        return await indexer.get_collection(name)

    @router.get("/v1/rag/collections/{name}/documents")
    async def list_documents(
        name: str,
        limit: int = Query(1000, ge=1, le=10_000),
        after: str | None = Query(None, description="the 'next' cursor of the previous page"),
    ) -> dict[str, Any]:
        return await indexer.list_documents(name, limit, after)

    @router.delete("/v1/rag/collections/{name}")
    async def delete_collection(name: str) -> dict[str, Any]:
        await indexer.drop_collection(name)
        return {"name": name, "deleted": True}

    @router.delete("/v1/rag/collections/{name}/documents/{doc_id:path}")
    async def delete_document(name: str, doc_id: str) -> dict[str, Any]:
        await indexer.delete_document(name, doc_id)
        return {"collection": name, "id": doc_id, "deleted": True}

    @router.post("/v1/rag/query")
    async def query(body: QueryBody) -> dict[str, Any]:
        results = await retriever.query(body.collection, body.query, body.top_k, body.mode)
        return {"results": [r.as_json() for r in results]}

    @router.post("/v1/rag/chat")
    async def chat(body: ChatBody) -> Response:
        return await answerer.chat(body)

    @router.post("/v1/chat/completions", responses=STREAM_RESPONSES)
    async def chat_completions(body: ChatBody) -> Response:
        """OpenAI clients pointed straight at RAG: ``model`` is ``rag/<collection>``."""
        return await answerer.chat(body)

    @router.get("/v1/models")
    async def models() -> dict[str, Any]:
        collections = await indexer.list_collections()
        return model_list(
            model_card(f"{MODEL_PREFIX}{c['name']}", 0, owned_by="p2-rag") for c in collections
        )

    return router
