"""Cohere's embed API (/v1/embed, /v2/embed) and its /v2/rerank, in Cohere's shapes, so
that Cohere's SDKs and what is built on them (LangChain's CohereEmbeddings) can be
pointed here. /v1/rerank is with the other rerank routes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from embedserve.server.auth import ApiKey
from embedserve.server.embedder import EmbedResult
from embedserve.server.http.backend import Backend, backend_of
from embedserve.server.http.cohere_schemas import CohereEmbedRequest, CohereV2RerankRequest
from embedserve.server.http.compat_response_schemas import (
    CohereEmbedByType,
    CohereRerankResponse,
    CohereV1EmbedResponse,
)
from embedserve.server.http.guard import guard
from embedserve.server.http.rerank_routes import cohere_rerank
from embedserve.server.http.response_schemas import ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.precision import Precision, float32_base64

router = APIRouter(tags=["Cohere-compatible"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


async def _embed(backend: Backend, body: CohereEmbedRequest) -> tuple[list[str], EmbedResult]:
    backend.served_model(body.model)
    embedder = backend.embedder
    spec = embedder.model.spec
    params = body.params(spec.prompts, spec.max_tokens, embedder.model.dimensions)
    texts, field = body.input_texts()
    return texts, await embedder.embed(texts, params, field=field, options_field="")


def _by_type(result: EmbedResult, types: Sequence[str]) -> dict[str, list[Any]]:
    """The vectors in each of the formats asked for (each format once)."""
    out: dict[str, list[Any]] = {}
    for kind in dict.fromkeys(types):
        if kind == "base64":
            out[kind] = float32_base64(result.vectors)
        else:
            precision = Precision.FLOAT32 if kind == "float" else Precision(kind)
            out[kind] = result.vectors_in(precision).tolist()
    return out


def _meta(version: str, result: EmbedResult) -> dict[str, Any]:
    return {
        "api_version": {"version": version},
        "billed_units": {"input_tokens": result.total_tokens},
    }


@router.post("/v2/embed", summary="Embed texts (Cohere's v2 API)", responses=ok(CohereEmbedByType))
async def v2_embed(body: CohereEmbedRequest, request: Request, caller: Caller) -> Response:
    texts, result = await _embed(backend_of(request), body)
    return json_response(
        {
            "id": str(uuid.uuid4()),
            "response_type": "embeddings_by_type",
            "embeddings": _by_type(result, body.embedding_types or ["float"]),
            "texts": texts,
            "meta": _meta("2", result),
        }
    )


@router.post(
    "/v1/embed",
    summary="Embed texts (Cohere's v1 API)",
    responses=ok(CohereV1EmbedResponse),
)
async def v1_embed(body: CohereEmbedRequest, request: Request, caller: Caller) -> Response:
    texts, result = await _embed(backend_of(request), body)
    answer: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts}
    if body.embedding_types is None:  # v1 answers plain floats unless types are asked for
        answer |= {"response_type": "embeddings_floats", "embeddings": result.vectors.tolist()}
    else:
        answer |= {
            "response_type": "embeddings_by_type",
            "embeddings": _by_type(result, body.embedding_types),
        }
    return json_response(answer | {"meta": _meta("1", result)})


@router.post(
    "/v2/rerank", summary="Rerank documents (Cohere's v2 API)", responses=ok(CohereRerankResponse)
)
async def v2_rerank(body: CohereV2RerankRequest, request: Request, caller: Caller) -> Response:
    backend = backend_of(request)
    body.check_limit(backend.reranker.model.spec.max_tokens)
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    return await cohere_rerank(backend, body, document_object=True, meta=meta)
