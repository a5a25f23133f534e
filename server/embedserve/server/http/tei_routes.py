"""TEI-compatible routes: text-embeddings-inference's /embed, /embed_all, /similarity,
/tokenize, /decode, /rerank and /info, in its shapes, so that its clients (huggingface_hub's
InferenceClient, LlamaIndex's TextEmbeddingsInference) point here unchanged.

As in TEI, POST / embeds (InferenceClient posts an endpoint's feature extraction there),
vectors are normalised unless ``normalize`` is false, and errors are
``{"error", "error_type"}`` (responses.py). Unlike TEI, a text past the model's maximum is
cut unless ``truncate`` is false, as everywhere in this server.
"""

from __future__ import annotations

import itertools
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from embedserve.server import similarity
from embedserve.server.auth import ApiKey
from embedserve.server.embedder import Task
from embedserve.server.http.backend import backend_of
from embedserve.server.http.compat_response_schemas import (
    TeiEmbeddings,
    TeiInfo,
    TeiRerankResponse,
    TeiScores,
    TeiTexts,
    TeiTokenEmbeddings,
    TeiTokens,
)
from embedserve.server.http.guard import guard
from embedserve.server.http.rerank_routes import cohere_rerank
from embedserve.server.http.rerank_schemas import AnyRerankRequest, CohereRerankRequest
from embedserve.server.http.response_schemas import ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.http.tei_schemas import (
    TeiDecodeRequest,
    TeiEmbedAllRequest,
    TeiEmbedRequest,
    TeiSimilarityRequest,
    TeiTokenizeRequest,
    TruncationOptions,
)
from embedserve.server.model_info import model_info
from embedserve.server.tokenization import TokenDetail

router = APIRouter(tags=["TEI-compatible"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


@router.post("/embed", summary="Embed texts (TEI's /embed)", responses=ok(TeiEmbeddings))
async def embed(body: TeiEmbedRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    params = body.params(embedder.model.spec.prompts)
    # TEI's options are top-level fields: errors name them so (options_field "").
    result = await embedder.embed(body.texts(), params, options_field="")
    return json_response(result.vectors.tolist())


@router.post(
    "/",
    summary="Embed texts (TEI's default route for an embedding model)",
    responses=ok(TeiEmbeddings),
)
async def embed_at_root(body: TeiEmbedRequest, request: Request, caller: Caller) -> Response:
    return await embed(body, request, caller)


@router.post(
    "/embed_all", summary="Per-token vectors (TEI's /embed_all)", responses=ok(TeiTokenEmbeddings)
)
async def embed_all(body: TeiEmbedAllRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    params = body.params(embedder.model.spec.prompts)
    result = await embedder.embed_tokens(body.texts(), params)
    return json_response([matrix.tolist() for matrix in result.vectors])


@router.post(
    "/similarity",
    summary="Similarity of sentences to a source sentence (TEI's /similarity), by the "
    "model's similarity function",
    responses=ok(TeiScores),
)
async def score(body: TeiSimilarityRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    options = body.parameters or TruncationOptions()
    scored = await similarity.score_candidates(
        embedder,
        body.inputs.source_sentence,
        body.inputs.sentences,
        options.params(embedder.model.spec.prompts),
        split_prompts=False,  # TEI embeds both sides alike
        fields=("inputs.source_sentence", "inputs.sentences"),
    )
    return json_response(scored.scores.tolist())


def _tei_tokens(text: str, detail: TokenDetail, with_special: bool) -> list[dict[str, Any]]:
    """TEI's tokens: a text token's span and the text under it; the tokenizer's added
    tokens and the prompt's have no span in the text. TEI's spans count the text's UTF-8
    bytes, as its (Rust) tokenizer does, where Python's count characters."""
    byte_at = list(itertools.accumulate((len(c.encode()) for c in text), initial=0))
    tokens: list[dict[str, Any]] = []
    for token_id, token, (start, stop), special in zip(
        detail.ids, detail.tokens, detail.offsets, detail.special, strict=True
    ):
        if special and not with_special:
            continue
        in_text = not special and stop > start
        tokens.append(
            {
                "id": token_id,
                "text": text[start:stop] if in_text else token,
                "special": special,
                "start": byte_at[start] if in_text else None,
                "stop": byte_at[stop] if in_text else None,
            }
        )
    return tokens


@router.post(
    "/tokenize",
    summary="Tokens as the model sees them (TEI's /tokenize)",
    responses=ok(TeiTokens),
)
async def tokenize(body: TeiTokenizeRequest, request: Request, caller: Caller) -> Response:
    embedder = backend_of(request).embedder
    texts = body.texts()
    details = await embedder.tokenize(texts, Task.DEFAULT, body.prompt(embedder.model.spec.prompts))
    return json_response(
        [
            _tei_tokens(text, detail, body.add_special_tokens)
            for text, detail in zip(texts, details, strict=True)
        ]
    )


@router.post("/decode", summary="The text of token ids (TEI's /decode)", responses=ok(TeiTexts))
async def decode(body: TeiDecodeRequest, request: Request, caller: Caller) -> Response:
    texts = await backend_of(request).embedder.decode(
        body.id_lists(), body.skip_special_tokens, body.id_names()
    )
    return json_response(texts)


@router.post(
    "/rerank",
    summary="Rerank with the server's --reranker: TEI's /rerank (texts), or Infinity's (documents)",
    responses=ok(TeiRerankResponse),
)
async def tei_rerank(body: AnyRerankRequest, request: Request, caller: Caller) -> Response:
    if isinstance(body, CohereRerankRequest):  # Infinity's clients post its body here
        return await cohere_rerank(backend_of(request), body, document_object=False)
    reranker = backend_of(request).reranker
    result = await reranker.rerank(body.query, body.texts, body.params(), field="texts")
    return json_response(
        [
            {"index": doc.index, "score": doc.score}
            | ({"text": body.texts[doc.index]} if body.return_text else {})
            for doc in result.ranked
        ]
    )


@router.get("/info", summary="What is served (TEI's /info)", responses=ok(TeiInfo))
async def info(request: Request, caller: Caller) -> Response:
    served = model_info(backend_of(request).embedder)
    return json_response(
        {
            "model_id": served.model_id,
            "model_sha": served.model_revision or None,
            "model_dtype": served.dtype,
            "model_type": {"embedding": {"pooling": served.pooling.value}},
            "prompts": served.prompts,
            "default_prompt_name": served.default_prompt_name or None,
            "max_input_length": served.max_tokens,
            "max_batch_tokens": served.batching.max_batch_tokens,
            "max_batch_requests": served.batching.max_batch_size,
            "max_client_batch_size": served.limits.max_inputs_per_request,
            "auto_truncate": True,
            "version": metadata.version("embedserve"),
        }
    )
