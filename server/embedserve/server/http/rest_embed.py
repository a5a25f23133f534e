"""REST mirror of EmbeddingService: embed, embed-tokens, tokenize, similarity, model info."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from embedserve.server import similarity
from embedserve.server.auth import ApiKey
from embedserve.server.embedder import EmbedResult, Task, Timings
from embedserve.server.errors import InvalidArgument
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.response_schemas import (
    EmbedResponse,
    EmbedTokensResponse,
    ModelInfo,
    SimilarityResponse,
    TokenizeResponse,
    ok,
)
from embedserve.server.http.responses import json_response
from embedserve.server.http.schemas import (
    EmbedRequest,
    EmbedTokensRequest,
    SimilarityRequest,
    TokenizeRequest,
)
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.model_info import model_info
from embedserve.server.precision import Precision

router = APIRouter(prefix="/api/v1", tags=["Embeddings"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


def timings_json(timings: Timings) -> dict[str, float]:
    return dataclasses.asdict(timings)


def embed_json(result: EmbedResult, precision: Precision, model_id: str) -> dict[str, Any]:
    """An Embed answer's JSON form (also each line of an embed stream's answer)."""
    field = "values" if precision is Precision.FLOAT32 else "quantized"
    embeddings = [
        {field: values, "token_count": tokens, "truncated": cut, "chunk_count": chunks}
        for values, tokens, cut, chunks in result.rows(precision)
    ]
    return {
        "embeddings": embeddings,
        "usage": {"total_tokens": result.total_tokens},
        "timings": timings_json(result.timings),
        "model": model_id,
        "dimensions": int(result.vectors.shape[1]),
    }


@router.post(
    "/embed", summary="Embed texts with every option (gRPC Embed)", responses=ok(EmbedResponse)
)
async def embed(body: EmbedRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    result = await embedder.embed(body.inputs, body.options.params())
    model_id = embedder.model.spec.model_id
    return json_response(embed_json(result, Precision(body.precision), model_id))


@router.post(
    "/embed-tokens",
    summary="Per-token vectors (gRPC EmbedTokens)",
    responses=ok(EmbedTokensResponse),
)
async def embed_tokens(body: EmbedTokensRequest, request: Request, caller: Caller) -> Response:
    result = await backend_of(request).embedder.embed_tokens(body.inputs, body.options.params())
    items: list[dict[str, Any]] = []
    for detail, matrix, truncated in zip(
        result.details, result.vectors, result.truncated, strict=True
    ):
        tokens = [
            {"token": tok, "token_id": tid, "start": start, "end": end, "values": row}
            for tok, tid, (start, end), row in zip(
                detail.tokens, detail.ids, detail.offsets, matrix.tolist(), strict=True
            )
        ]
        items.append({"tokens": tokens, "truncated": truncated})
    return json_response(
        {
            "results": items,
            "usage": {"total_tokens": sum(len(d.ids) for d in result.details)},
            "timings": timings_json(result.timings),
            "dimensions": int(result.vectors[0].shape[1]),
        }
    )


@router.post(
    "/tokenize",
    summary="Tokens as the model sees them (gRPC Tokenize)",
    responses=ok(TokenizeResponse),
)
async def tokenize(body: TokenizeRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    task = Task(body.task) if body.task else Task.DEFAULT
    details = await embedder.tokenize(body.inputs, task, body.prompt)
    limit = embedder.model.spec.max_tokens
    return json_response(
        {
            "results": [
                {
                    "ids": d.ids,
                    "tokens": d.tokens,
                    "token_count": len(d.ids),
                    "exceeds_max_tokens": len(d.ids) > limit,
                }
                for d in details
            ],
            "usage": {"total_tokens": sum(len(d.ids) for d in details)},
            "max_tokens": limit,
        }
    )


@router.post(
    "/similarity",
    summary="Similarity of pairs or query/candidates, by the model's similarity function",
    responses=ok(SimilarityResponse),
)
async def score(body: SimilarityRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    params = body.options.params()
    if (body.pairs is None) == (body.query_candidates is None):
        raise InvalidArgument("exactly one of pairs or query_candidates must be set")
    if body.pairs is not None:
        pairs = [(pair.a, pair.b) for pair in body.pairs]
        scored = await similarity.score_pairs(embedder, pairs, params, field="pairs")
    else:
        assert body.query_candidates is not None
        qc = body.query_candidates
        scored = await similarity.score_candidates(embedder, qc.query, qc.candidates, params)
    return json_response(
        {
            "scores": scored.scores.tolist(),
            "usage": {"total_tokens": scored.total_tokens},
            "timings": timings_json(scored.timings),
        }
    )


@router.get(
    "/model",
    summary="What is served: model, pooling, prompts, limits",
    responses=ok(ModelInfo),
)
async def get_model_info(request: Request, caller: Caller) -> Response:
    backend = backend_of(request)
    info = model_info(backend.embedder, backend.reranker_if_served)
    body = dataclasses.asdict(info)
    body["pooling"] = info.pooling.value
    body["similarity"] = info.similarity.value
    return json_response(body)
