"""The OpenAPI document: FastAPI's, with the error responses this API really sends.

FastAPI documents a 422 with its own validation body for every route that takes one;
this API answers 400 with one of its error shapes instead (OpenAI's under /v1, TEI's
413 on its routes, embedserve's elsewhere), and every route can also refuse a caller
(401, 403, 429) or be unable to serve (500, 503), and one taking a body refuses it
compressed (415). Clients generated from the document see those.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from embedserve.server.http.responses import (
    COHERE_PATHS,
    SHARED_RERANK_PATH,
    TEI_PATHS,
    is_openai_path,
)

_NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
ERROR_SCHEMAS: dict[str, Any] = {
    # Closed, as success bodies are: it is also the last line of a failed NDJSON stream.
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "status", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "status": {"type": "string", "description": "the gRPC status code's name"},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "TeiError": {
        "type": "object",
        "required": ["error", "error_type"],
        "properties": {
            "error": {"type": "string"},
            "error_type": {
                "type": "string",
                "enum": ["Validation", "Overloaded", "Unhealthy", "Backend"],
            },
        },
    },
    "CohereError": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "SharedRerankError": {
        "allOf": [
            {"$ref": "#/components/schemas/CohereError"},
            {"$ref": "#/components/schemas/OpenAIError"},
        ],
        "description": "Cohere's message beside OpenAI's (Infinity's) error object",
    },
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": _NULLABLE_STRING,
                    "code": _NULLABLE_STRING,
                },
            }
        },
    },
}
# Every route: a malformed or oversized request, a refused caller, a server that cannot
# answer. Rate limits and a full queue are both 429.
COMMON = {
    400: "invalid request (a field, a limit, or a body over max_message_bytes)",
    401: "no API key or an unknown one (when keys are configured)",
    403: "the key's role or collections do not cover this call",
    429: "rate limited, or the queue is full: retry after Retry-After seconds",
    500: "internal error",
    503: "loading, draining, or the vector store is unreachable",
}
# Every operation taking a body (guard.py, strict_json.py).
UNSUPPORTED_ENCODING = "a body sent with a content-encoding (gzip...): bodies are uncompressed"
NOT_FOUND = "the named model or collection does not exist"
CONFLICT = "a collection or alias of that name exists"


# Bodies that name a model: another one is 404 (/rerank: in Infinity's body).
_NAMING_A_MODEL = (
    frozenset({"/v1/embeddings", "/embeddings", "/v1/rerank", "/rerank"}) | COHERE_PATHS
)


def _statuses(path: str, verb: str) -> dict[int, str]:
    if path == "/health" or (verb, path) == ("get", "/"):  # 200 and 503: on the route
        return {401: "with auth_health on: no API key or an unknown one"}
    statuses = dict(COMMON)
    if path in TEI_PATHS:  # TEI's statuses for a refused request
        del statuses[400]
        statuses[413] = "a request refused: a text too long, an unknown prompt, a limit"
        statuses[422] = "a body not of this schema"
    if "{" in path or path in _NAMING_A_MODEL:
        statuses[404] = NOT_FOUND
    if (verb, path) == ("post", "/api/v1/collections"):
        statuses[409] = CONFLICT
    if (verb, path) == ("get", "/api/v1/aliases"):
        statuses[404] = "the collection named does not exist"
    if (verb, path) == ("post", "/api/v1/aliases"):
        statuses[404] = "an alias to delete, or a collection to name, does not exist"
        statuses[409] = "an alias would take a collection's name"
    return statuses


def _error_response(path: str, description: str) -> dict[str, Any]:
    if path in TEI_PATHS:
        schema = "TeiError"
    elif path in COHERE_PATHS:
        schema = "CohereError"
    elif path == SHARED_RERANK_PATH:
        schema = "SharedRerankError"
    else:
        schema = "OpenAIError" if is_openai_path(path) else "Error"
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def with_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with 422 replaced by the statuses each operation can answer."""
    for path, operations in document.get("paths", {}).items():
        for verb, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = _statuses(path, verb)
            if "requestBody" in operation:
                statuses[415] = UNSUPPORTED_ENCODING
            for status, description in statuses.items():
                responses.setdefault(str(status), _error_response(path, description))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(ERROR_SCHEMAS)
    return document


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = with_error_responses(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
