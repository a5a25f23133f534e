"""One minimal request per HTTP route, so tests can sweep a key over the HTTP surface."""

from __future__ import annotations

import json
from typing import Any

import httpx

_DOC = {"id": "h1", "text": "document over http"}

# "VERB /template" (as in auth.ROUTE_METHODS) -> (verb, path, JSON body or NDJSON text).
# {c} is the collection; "scratch-{c}" the one a call may create or delete.
REQUESTS: dict[str, tuple[str, str, Any]] = {
    "POST /v1/embeddings": ("POST", "/v1/embeddings", {"input": "hi"}),
    "GET /v1/models": ("GET", "/v1/models", None),
    "GET /v1/models/{model}": ("GET", "/v1/models/minilm", None),
    "POST /embeddings": ("POST", "/embeddings", {"input": "hi"}),
    "GET /models": ("GET", "/models", None),
    "POST /api/v1/embed": ("POST", "/api/v1/embed", {"inputs": ["hi"]}),
    "POST /api/v1/embed-tokens": ("POST", "/api/v1/embed-tokens", {"inputs": ["hi"]}),
    "POST /api/v1/tokenize": ("POST", "/api/v1/tokenize", {"inputs": ["hi"]}),
    "POST /api/v1/similarity": ("POST", "/api/v1/similarity", {"pairs": [{"a": "x", "b": "y"}]}),
    "GET /api/v1/model": ("GET", "/api/v1/model", None),
    "POST /api/v1/rerank": ("POST", "/api/v1/rerank", {"query": "q", "documents": ["a", "b"]}),
    "POST /v1/rerank": ("POST", "/v1/rerank", {"query": "q", "documents": ["a", "b"]}),
    "POST /v1/embed": ("POST", "/v1/embed", {"texts": ["hi"]}),
    "POST /v2/embed": ("POST", "/v2/embed", {"texts": ["hi"]}),
    "POST /v2/rerank": ("POST", "/v2/rerank", {"query": "q", "documents": ["a", "b"]}),
    "GET /api/v1/collections": ("GET", "/api/v1/collections", None),
    "POST /api/v1/collections": ("POST", "/api/v1/collections", {"name": "scratch-{c}"}),
    "GET /api/v1/collections/{name}": ("GET", "/api/v1/collections/{c}", None),
    "PATCH /api/v1/collections/{name}": ("PATCH", "/api/v1/collections/{c}", {"hnsw_ef": 64}),
    "DELETE /api/v1/collections/{name}": ("DELETE", "/api/v1/collections/scratch-{c}", None),
    "POST /api/v1/collections/{name}/upsert": (
        "POST",
        "/api/v1/collections/{c}/upsert",
        {"documents": [_DOC]},
    ),
    "POST /api/v1/embed-stream": (
        "POST",
        "/api/v1/embed-stream",
        json.dumps({"inputs": ["document"]}) + "\n",
    ),
    "POST /api/v1/collections/{name}/ingest": (
        "POST",
        "/api/v1/collections/{c}/ingest",
        json.dumps({"documents": [_DOC]}) + "\n",
    ),
    "POST /api/v1/collections/{name}/search": (
        "POST",
        "/api/v1/collections/{c}/search",
        {"text": "document"},
    ),
    "POST /api/v1/collections/{name}/search-batch": (
        "POST",
        "/api/v1/collections/{c}/search-batch",
        {"searches": [{"text": "document"}]},
    ),
    "POST /api/v1/collections/{name}/recommend": (
        "POST",
        "/api/v1/collections/{c}/recommend",
        {"positive": [{"text": "document"}]},
    ),
    "POST /api/v1/collections/{name}/get": ("POST", "/api/v1/collections/{c}/get", {"ids": ["h1"]}),
    "POST /api/v1/collections/{name}/delete": (
        "POST",
        "/api/v1/collections/{c}/delete",
        {"ids": ["nope"]},
    ),
    "POST /api/v1/collections/{name}/payload": (
        "POST",
        "/api/v1/collections/{c}/payload",
        {"filter": {"must": [{"has_id": {"ids": ["nope"]}}]}, "payload": {"seen": True}},
    ),
    "POST /api/v1/collections/{name}/count": ("POST", "/api/v1/collections/{c}/count", {}),
    "POST /api/v1/collections/{name}/facet": (
        "POST",
        "/api/v1/collections/{c}/facet",
        {"key": "topic"},
    ),
    "POST /api/v1/collections/{name}/scroll": ("POST", "/api/v1/collections/{c}/scroll", {}),
    "POST /api/v1/collections/{name}/cluster": (
        "POST",
        "/api/v1/collections/{c}/cluster",
        {"k": 1},
    ),
    "POST /api/v1/cluster": ("POST", "/api/v1/cluster", {"texts": ["a", "b"], "k": 1}),
    "POST /api/v1/collections/{name}/find-duplicates": (
        "POST",
        "/api/v1/collections/{c}/find-duplicates",
        {},
    ),
    "POST /api/v1/find-duplicates": ("POST", "/api/v1/find-duplicates", {"texts": ["a", "b"]}),
    "GET /api/v1/aliases": ("GET", "/api/v1/aliases", None),
    "POST /api/v1/aliases": ("POST", "/api/v1/aliases", {"set": {"alias-{c}": "{c}"}}),
    "POST /": ("POST", "/", {"inputs": "hi"}),
    "POST /embed": ("POST", "/embed", {"inputs": "hi"}),
    "POST /embed_all": ("POST", "/embed_all", {"inputs": "hi"}),
    "POST /similarity": (
        "POST",
        "/similarity",
        {"inputs": {"source_sentence": "x", "sentences": ["y"]}},
    ),
    "POST /tokenize": ("POST", "/tokenize", {"inputs": "hi"}),
    "POST /decode": ("POST", "/decode", {"ids": [7592]}),
    "GET /info": ("GET", "/info", None),
    "POST /rerank": ("POST", "/rerank", {"query": "q", "texts": ["a", "b"]}),
}


def status_of(
    http: httpx.Client, route: str, collection: str, key: str | None, scheme: str = "Bearer"
) -> int:
    verb, path, body = REQUESTS[route]
    headers = {} if key is None else {"authorization": f"{scheme} {key}"}
    path = path.replace("{c}", collection)
    if isinstance(body, str):
        reply = http.request(verb, path, content=body, headers=headers)
    elif isinstance(body, dict):
        text = json.dumps(body).replace("{c}", collection)
        headers["content-type"] = "application/json"
        reply = http.request(verb, path, content=text, headers=headers)
    else:
        reply = http.request(verb, path, headers=headers)
    if reply.status_code == 200 and route.endswith(("/ingest", "/embed-stream")):
        # Streamed: a refusal after the status line would arrive as an error line.
        assert "error" not in reply.text, reply.text
    return reply.status_code
