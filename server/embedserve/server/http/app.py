"""The FastAPI application: routes, error handlers, observability, health and docs."""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from embedserve.server.auth import Role, authorize, presented_token
from embedserve.server.http import (
    cohere_routes,
    docs,
    embed_stream_route,
    handlers,
    ingest_route,
    openai_routes,
    openapi,
    rerank_routes,
    rest_aliases,
    rest_analysis,
    rest_embed,
    rest_vectors,
    tei_routes,
)
from embedserve.server.http.backend import Backend
from embedserve.server.http.head import HeadAsGet
from embedserve.server.http.observe import ObserveMiddleware
from embedserve.server.http.responses import CODE_KEY, json_response
from embedserve.server.http.settings import HttpSettings
from embedserve.server.metrics import Metrics

DESCRIPTION = """\
Text embeddings and a vector store over HTTP/JSON: an OpenAI-compatible
`/v1/embeddings` (also at `/embeddings`, as Infinity serves it), under `/api/v1` a
mirror of the gRPC API, and text-embeddings-inference's `/embed`, `/embed_all`,
`/similarity`, `/tokenize`, `/decode` and `/info`, Cohere's `/v1/embed`, `/v2/embed`
and `/v2/rerank`, and rerank routes in Cohere's, Jina's, Infinity's and TEI's shapes.
Send API keys as `Authorization: Bearer KEY`. Errors of OpenAI's routes have OpenAI's
shape, on TEI's routes TEI's (`{"error", "error_type"}`, 413 for a refused request), on
Cohere's `{"message"}`, elsewhere `{"error": {"code", "status", "message"}}`.
"""
_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}},
}
# Every verb a route takes (PATCH: UpdateCollection), and HEAD, which GET routes answer.
CORS_METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE"]
HEALTH_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "serving", "content": {"application/json": {"schema": _HEALTH}}},
    503: {
        "description": "loading or draining",
        "content": {"application/json": {"schema": _HEALTH}},
    },
}


def build_app(backend: Backend, metrics: Metrics) -> FastAPI:
    app = FastAPI(
        title="embedserve",
        description=DESCRIPTION,
        version="1",
        docs_url=None,  # served by docs.install from local assets
        redoc_url=None,
    )
    app.state.backend = backend
    app.include_router(openai_routes.router)
    app.include_router(openai_routes.unprefixed)
    app.include_router(rest_embed.router)
    app.include_router(embed_stream_route.router)
    app.include_router(rest_vectors.router)
    app.include_router(rest_aliases.router)
    app.include_router(ingest_route.router)
    app.include_router(rest_analysis.router)
    app.include_router(tei_routes.router)
    app.include_router(rerank_routes.router)
    app.include_router(cohere_routes.router)
    handlers.install(app)
    docs.install(app)
    openapi.install(app)
    app.add_middleware(HeadAsGet)  # inside ObserveMiddleware, which records the HEAD
    app.add_middleware(
        ObserveMiddleware,
        metrics=metrics,
        max_body_bytes=backend.settings.max_message_bytes,
        drain=backend.drain,
        routes=app.router.routes,  # the list itself: routes added below are in it too
    )
    if origins := backend.settings.section(HttpSettings).cors_origins():
        # Outermost: a preflight is answered before routing and keys (browsers send it
        # without credentials); every answer, errors included, carries the headers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            # Any request header: the SDKs add their own (OpenAI's x-stainless-* and
            # openai-project, Cohere's x-fern-* and x-client-name), and a listed origin is
            # trusted already; the call itself still needs its key.
            allow_headers=["*"],
            expose_headers=["x-request-id", "retry-after", "retry-after-ms"],
            max_age=600,
        )

    @app.get(
        "/health",
        tags=["Health"],
        summary="200 when serving, 503 while loading or draining",
        responses=HEALTH_RESPONSES,
    )
    async def health(request: Request) -> Response:
        if backend.settings.auth_health and len(backend.keys):
            token = presented_token(request.headers.getlist("authorization"))
            authorize(backend.keys, token, Role.READ, "health")
        serving = backend.ready
        if not serving:  # loading or draining, as it should: no INTERNAL fault
            request.scope[CODE_KEY] = grpc.StatusCode.UNAVAILABLE.name
        return json_response(
            {"status": "SERVING" if serving else "NOT_SERVING"}, 200 if serving else 503
        )

    # TEI answers GET / as its health check, and load balancers probe / by default.
    app.add_api_route(
        "/",
        health,
        methods=["GET"],
        tags=["Health"],
        summary="As /health (TEI's health check)",
        responses=HEALTH_RESPONSES,
    )
    return app
