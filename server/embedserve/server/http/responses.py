"""JSON responses and the error shapes: OpenAI's under /v1, TEI's and Cohere's on their
routes, embedserve's elsewhere.

Bodies are serialised here with the standard library rather than through FastAPI's
recursive encoder: a response of 64 vectors holds tens of thousands of floats.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response

from embedserve.server.errors import EmbedServeError, Overloaded
from embedserve.server.status import HTTP_STATUS_OF, status_of

# Set in the request scope by whoever answers with an error, for metrics and the access log.
CODE_KEY = "embedserve.code"

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Response(content, status, headers, media_type="application/json")


# The TEI-compatible routes (tei_routes.py) answer errors as TEI does.
TEI_PATHS = frozenset(
    {"/", "/embed", "/embed_all", "/similarity", "/tokenize", "/decode", "/info", "/rerank"}
)


# Cohere's routes (cohere_routes.py) answer errors as Cohere does: {"message"}.
COHERE_PATHS = frozenset({"/v1/embed", "/v2/embed", "/v2/rerank"})


# /v1/rerank is Cohere's, Jina's and Infinity's: its errors carry Cohere's "message" beside
# the "error" object of OpenAI's shape (Infinity's), so that each kind of client reads its own.
SHARED_RERANK_PATH = "/v1/rerank"


# OpenAI's routes at Infinity's paths (openai_routes.unprefixed).
OPENAI_ALIASES = frozenset({"/embeddings", "/models"})


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/") or path in OPENAI_ALIASES


def http_status(path: str, code: grpc.StatusCode) -> int:
    """The HTTP status of ``code`` on ``path``: TEI answers a request it refuses with 413
    (and one whose body it cannot read with 422: handlers.py)."""
    status = HTTP_STATUS_OF[code]
    return 413 if status == 400 and path in TEI_PATHS else status


def _tei_error_type(status: int) -> str:
    if status == 429:
        return "Overloaded"
    if status == 503:
        return "Unhealthy"
    return "Backend" if status >= 500 else "Validation"


def error_body(path: str, code: grpc.StatusCode, message: str, status: int | None = None) -> Any:
    status = status or http_status(path, code)
    if path in TEI_PATHS:
        return {"error": message, "error_type": _tei_error_type(status)}
    if path in COHERE_PATHS:
        return {"message": message}
    if is_openai_path(path):
        kind = _OPENAI_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        openai = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return {"message": message, **openai} if path == SHARED_RERANK_PATH else openai
    return {"error": {"code": status, "status": code.name, "message": message}}


def error_response(
    request: Request,
    code: grpc.StatusCode,
    message: str,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    """``status`` overrides the code's HTTP status where HTTP has a closer one (405, 415)."""
    request.scope[CODE_KEY] = code.name
    status = status or http_status(request.url.path, code)
    if status == 401:  # HTTP asks a 401 to name how to authenticate (RFC 9110, 15.5.2)
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return json_response(error_body(request.url.path, code, message, status), status, headers)


def core_error_response(request: Request, error: EmbedServeError) -> Response:
    headers = None
    if isinstance(error, Overloaded):
        # Whole seconds for HTTP's Retry-After; the exact wait in milliseconds too.
        headers = {
            "Retry-After": str(max(1, -(-error.retry_after_ms // 1000))),
            "retry-after-ms": str(error.retry_after_ms),
        }
    return error_response(request, status_of(error), error.message, headers)
