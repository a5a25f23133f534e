"""OpenAI-compatible routes: POST /v1/embeddings and GET /v1/models, in OpenAI's shapes.

Infinity serves the same two without the /v1 prefix (TEI serves /embeddings so too), and
its clients (LangChain's InfinityEmbeddings) post there: ``unprefixed`` answers them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from embedserve.server.auth import ApiKey
from embedserve.server.embedder import EmbedResult
from embedserve.server.errors import InvalidArgument, NotFound
from embedserve.server.http.backend import backend_of
from embedserve.server.http.compat_response_schemas import (
    OpenAIEmbeddingList,
    OpenAIModel,
    OpenAIModelList,
)
from embedserve.server.http.guard import guard
from embedserve.server.http.response_schemas import ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.schemas import OpenAIEmbeddingRequest
from embedserve.server.http.strict_json import StrictJsonRoute
from embedserve.server.input_names import InputNames
from embedserve.server.precision import float32_base64

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]
# /v1/models has no creation time to report; the process start stands in for it.
_STARTED = int(time.time())


TOKEN_IDS_REFUSED = (
    "input holds token ids. OpenAI's clients make these with OpenAI's tokenizer, which this "
    "model does not share, so its vectors would be wrong: send the texts instead (LangChain: "
    "OpenAIEmbeddings(check_embedding_ctx_length=False)). For ids of this model's own "
    "tokenizer, start the server with --openai-token-ids model"
)


def _encode(result: EmbedResult, encoding: str | None) -> list[Any]:
    if encoding == "base64":
        return float32_base64(result.vectors)
    rows: list[Any] = result.vectors.tolist()
    return rows


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI's API)",
    responses=ok(OpenAIEmbeddingList),
)
async def create_embeddings(
    body: OpenAIEmbeddingRequest, request: Request, caller: Caller
) -> Response:
    backend = backend_of(request)
    served = backend.served_model(body.model)
    params = body.options().params()
    # OpenAI's options are top-level fields: errors name them so (options_field "").
    data, embedder = body.input, backend.embedder
    token_ids = bool(data) and not isinstance(data, str) and not isinstance(data[0], str)
    if token_ids and backend.settings.openai_token_ids == "refuse":
        raise InvalidArgument(TOKEN_IDS_REFUSED)
    if isinstance(data, str):
        result = await embedder.embed([data], params, field="input", options_field="")
    elif data and all(isinstance(item, int) for item in data):
        one = InputNames.single("input")  # its ids named input[3], not input[0][3]
        result = await embedder.embed_token_ids([data], params, field=one, options_field="")  # type: ignore[list-item]
    elif data and all(isinstance(item, list) for item in data):
        result = await embedder.embed_token_ids(data, params, options_field="")  # type: ignore[arg-type]
    else:
        result = await embedder.embed(data, params, field="input", options_field="")  # type: ignore[arg-type]
    embeddings = _encode(result, body.encoding_format)
    tokens = result.total_tokens
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(embeddings)
            ],
            "model": served,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _model_entry(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _STARTED, "owned_by": "embedserve"}


@router.get(
    "/models", summary="List the served model (OpenAI's API)", responses=ok(OpenAIModelList)
)
async def list_models(request: Request, caller: Caller) -> Response:
    served = backend_of(request).embedder.model.spec.model_id
    return json_response({"object": "list", "data": [_model_entry(served)]})


@router.get(
    "/models/{model:path}",
    summary="Describe the served model (OpenAI's API)",
    responses=ok(OpenAIModel),
)
async def get_model(model: str, request: Request, caller: Caller) -> Response:
    if not model:
        raise NotFound("a model id must follow /v1/models/")
    return json_response(_model_entry(backend_of(request).served_model(model)))


unprefixed = APIRouter(tags=["OpenAI-compatible"], route_class=StrictJsonRoute)
unprefixed.add_api_route(
    "/embeddings",
    create_embeddings,
    methods=["POST"],
    summary="Create embeddings (OpenAI's API, at Infinity's path)",
    responses=ok(OpenAIEmbeddingList),
)
unprefixed.add_api_route(
    "/models",
    list_models,
    methods=["GET"],
    summary="List the served model (at Infinity's path)",
    responses=ok(OpenAIModelList),
)
