"""Rerank over HTTP: embedserve's own route (/api/v1/rerank, the gRPC Rerank) and the
/v1/rerank of Cohere's, Jina's and Infinity's APIs, in their shapes (TEI's /rerank is
with TEI's other routes, tei_routes.py)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from embedserve.server.auth import ApiKey
from embedserve.server.errors import NotFound
from embedserve.server.http.backend import Backend, backend_of
from embedserve.server.http.compat_response_schemas import CohereRerankResponse
from embedserve.server.http.guard import guard
from embedserve.server.http.rerank_schemas import CohereRerankRequest, RerankRequest
from embedserve.server.http.response_schemas import RerankResponse, ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.rest_embed import timings_json
from embedserve.server.http.strict_json import StrictJsonRoute

router = APIRouter(route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


@router.post(
    "/api/v1/rerank",
    tags=["Embeddings"],
    summary="Score documents against a query (gRPC Rerank)",
    responses=ok(RerankResponse),
)
async def rerank(body: RerankRequest, request: Request, caller: Caller) -> Response:
    reranker = backend_of(request).reranker
    result = await reranker.rerank(body.query, body.documents, body.params())
    results: list[dict[str, Any]] = []
    for doc in result.ranked:
        item: dict[str, Any] = {"index": doc.index, "score": doc.score}
        if body.return_documents:
            item["document"] = body.documents[doc.index]
        results.append(item | {"token_count": doc.token_count, "truncated": doc.truncated})
    return json_response(
        {
            "results": results,
            "usage": {"total_tokens": result.total_tokens},
            "timings": timings_json(result.timings),
            "model": reranker.model.spec.reranker_id,
        }
    )


def _check_model(backend: Backend, name: str | None) -> str:
    served = backend.reranker.model.spec.reranker_id
    if name and name not in {served, backend.settings.reranker}:
        raise NotFound(f"reranker {name!r} is not served here; this server serves {served!r}")
    return served


@router.post(
    "/v1/rerank",
    tags=["Rerank API (Cohere, Jina, Infinity)"],
    summary="Rerank documents (the /v1/rerank of Cohere's, Jina's and Infinity's APIs)",
    responses=ok(CohereRerankResponse),
)
async def v1_rerank(body: CohereRerankRequest, request: Request, caller: Caller) -> Response:
    return await cohere_rerank(backend_of(request), body, document_object=True)


async def cohere_rerank(
    backend: Backend, body: CohereRerankRequest, document_object: bool, **extra: Any
) -> Response:
    """The answer of Cohere's and Jina's rerank APIs (a returned document is ``{"text"}``),
    or with ``document_object`` false of Infinity's /rerank (the text itself); ``extra``:
    more top-level fields."""
    served = _check_model(backend, body.model)
    texts = body.texts()
    result = await backend.reranker.rerank(body.query, texts, body.params())
    results = []
    for doc in result.ranked:
        item: dict[str, Any] = {"index": doc.index, "relevance_score": doc.score}
        if body.return_documents:
            text = texts[doc.index]
            item["document"] = {"text": text} if document_object else text
        results.append(item)
    return json_response(
        {
            "object": "rerank",
            "id": str(uuid.uuid4()),
            "created": int(time.time()),
            "model": served,
            "results": results,
            "usage": {"prompt_tokens": result.total_tokens, "total_tokens": result.total_tokens},
        }
        | extra
    )
