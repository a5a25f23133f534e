"""HEAD on every GET route (RFC 9110 §9.3.2): the GET's status and headers without its body,
behind the same keys, roles and collection lists. It was a 405 on all but /openapi.json
and /docs-assets; probes and monitors send it."""

from __future__ import annotations

import time
from typing import Any

import httpx

from embedserve.server.auth import ROUTE_METHODS

# The GET routes the OpenAPI document leaves out, and answers that are not 200.
UNDOCUMENTED = ["/openapi.json", "/docs", "/docs-assets/swagger-ui.css"]
NOT_FOUND = ["/api/v1/collections/missing", "/v1/models/other-model", "/nowhere"]


def _get_paths(http: httpx.Client, headers: dict[str, str]) -> list[str]:
    """Every GET route, its parameters filled in (collection "docs"), and some 404s."""
    document = http.get("/openapi.json", headers=headers).json()
    operations = document["paths"].items()
    assert not [path for path, verbs in operations if "head" in verbs]  # no operations of its own
    served = http.get("/v1/models", headers=headers).json()["data"][0]["id"]
    paths = [
        path.replace("{name}", "docs").replace("{model}", served)
        for path, verbs in operations
        if "get" in verbs
    ]
    return [*paths, *UNDOCUMENTED, *NOT_FOUND]


def _same_but_the_body(http: httpx.Client, path: str, headers: dict[str, str]) -> int:
    get = http.get(path, headers=headers)
    head = http.head(path, headers=headers)
    assert (head.status_code, head.content) == (get.status_code, b""), (path, head.text)
    for name in ("content-type", "content-length"):
        assert head.headers.get(name) == get.headers.get(name), (path, name)
    return head.status_code


def _count(running: Any, method: str) -> float:
    labels = {"method": method, "code": "OK", "transport": "http"}
    return running.server.metrics.registry.get_sample_value("embedserve_rpc_total", labels) or 0


def test_head_answers_as_get_without_the_body(both: Any) -> None:
    with httpx.Client(base_url=both.url, timeout=60) as http:
        http.post("/api/v1/collections", json={"name": "docs"}).raise_for_status()
        paths = _get_paths(http, {})
        probes = {"/health", "/", "/info", "/v1/models", "/models", "/api/v1/model"}
        assert probes | {"/api/v1/collections", "/api/v1/collections/docs"} <= set(paths)
        statuses = {path: _same_but_the_body(http, path, {}) for path in paths}
        assert {statuses[path] for path in probes} == {200}
        assert {statuses[path] for path in NOT_FOUND} == {404}
        # A path without GET has none: 405 as for GET; the verbs a path takes name HEAD.
        post_only = http.head("/v1/embeddings")
        assert (post_only.status_code, post_only.headers["allow"]) == (405, "POST")
        assert http.put("/health").headers["allow"] == "GET, HEAD"
        # Within a mount too (its Allow was empty).
        assert http.post("/docs-assets/swagger-ui.css").headers["allow"] == "GET, HEAD"
        # Counted as the RPC its GET mirrors.
        info = ROUTE_METHODS["GET /v1/models"]
        before = _count(both, info)
        assert http.head("/v1/models").status_code == 200
        deadline = time.monotonic() + 10  # counted once the answer has gone
        while _count(both, info) == before:
            assert time.monotonic() < deadline, "HEAD /v1/models was not counted as its GET"
            time.sleep(0.05)


def test_head_needs_the_key_its_get_needs(start_http_server: Any, minilm_model: Any) -> None:
    running = start_http_server(
        loaded=minilm_model, api_keys="k-admin admin;k-read read;k-mine read mine"
    )
    keys = [None, "wrong", "k-read", "k-mine"]
    with httpx.Client(base_url=running.url, timeout=60) as http:
        admin = {"authorization": "Bearer k-admin"}
        http.post("/api/v1/collections", json={"name": "docs"}, headers=admin).raise_for_status()
        paths = _get_paths(http, admin)
        seen = {
            (path, key): _same_but_the_body(
                http, path, {} if key is None else {"authorization": f"Bearer {key}"}
            )
            for path in paths
            for key in keys
        }
    assert seen["/v1/models", None] == seen["/api/v1/model", "wrong"] == 401
    assert seen["/api/v1/collections/docs", "k-mine"] == 403  # not one of its collections
    assert seen["/api/v1/collections/docs", "k-read"] == seen["/health", None] == 200
