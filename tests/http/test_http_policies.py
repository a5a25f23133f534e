"""Rate limit, metrics and CORS on the HTTP side: the same policies as gRPC, and browsers."""

from __future__ import annotations

from typing import Any

import httpx


def test_rate_limit_429_with_retry_after_and_metrics(
    start_http_server: Any, minilm_model: Any
) -> None:
    running = start_http_server(loaded=minilm_model, rate_limit_rps=0.01, rate_limit_burst=1)
    with httpx.Client(base_url=running.url) as http:
        assert http.get("/v1/models").status_code == 200
        limited = http.get("/v1/models")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert http.get("/health").status_code == 200  # probes are never limited
    registry = running.server.metrics.registry
    info = "/embedserve.v1.EmbeddingService/GetModelInfo"
    for code in ("OK", "RESOURCE_EXHAUSTED"):
        labels = {"method": info, "code": code, "transport": "http"}
        assert registry.get_sample_value("embedserve_rpc_total", labels) == 1, code


def test_cors_lets_listed_origins_call_with_a_key(
    start_http_server: Any, minilm_model: Any
) -> None:
    """A page on a listed origin may call the API from a browser: the preflight (sent
    without credentials) passes, the call itself still needs its key."""
    page = "https://search.example.com"
    running = start_http_server(
        loaded=minilm_model,
        api_keys="k-read read",
        cors_allow_origins=f"{page}, https://other.example.com",
    )
    preflight_headers = {
        "origin": page,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    with httpx.Client(base_url=running.url) as http:
        preflight = http.options("/v1/embeddings", headers=preflight_headers)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == page
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        call = {"origin": page, "authorization": "Bearer k-read"}
        answer = http.post("/v1/embeddings", json={"input": "hello"}, headers=call)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == page
        assert "x-request-id" in answer.headers["access-control-expose-headers"]
        keyless = http.post("/v1/embeddings", json={"input": "hello"}, headers={"origin": page})
        assert keyless.status_code == 401
        assert keyless.headers["access-control-allow-origin"] == page  # the page reads why
        stranger = {**preflight_headers, "origin": "https://evil.example.net"}
        refused = http.options("/v1/embeddings", headers=stranger)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


def test_no_cors_headers_unless_asked(both: Any) -> None:
    with httpx.Client(base_url=both.url) as http:
        answer = http.post(
            "/v1/embeddings", json={"input": "hello"}, headers={"origin": "https://a.example"}
        )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


# The request headers the SDKs send beyond authorization and content-type, as their Python
# SDKs sent them to a socket (their JS SDKs come from the same generators).
OPENAI_SDK_HEADERS = [
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-os",
    "x-stainless-arch",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-async",
    "x-stainless-retry-count",
    "x-stainless-read-timeout",
    "openai-organization",
    "openai-project",
]
COHERE_SDK_HEADERS = [
    "x-fern-language",
    "x-fern-runtime",
    "x-fern-platform",
    "x-fern-sdk-name",
    "x-fern-sdk-version",
    "x-client-name",
]


def test_cors_preflights_pass_for_every_verb_and_the_sdks_headers(
    start_http_server: Any, minilm_model: Any
) -> None:
    """A browser preflights each verb but GET/POST-without-extras, and every request header
    outside the CORS safelist: PATCH (UpdateCollection) and the SDKs' headers were refused."""
    page = "https://search.example.com"
    running = start_http_server(
        loaded=minilm_model, api_keys="k-admin admin", cors_allow_origins=page
    )
    key = {"authorization": "Bearer k-admin"}

    def preflight(http: httpx.Client, verb: str, path: str, headers: list[str]) -> httpx.Response:
        asked = {
            "origin": page,
            "access-control-request-method": verb,
            "access-control-request-headers": ", ".join(headers),
        }
        return http.options(path, headers=asked)

    with httpx.Client(base_url=running.url, timeout=60) as http:
        assert http.post("/api/v1/collections", json={"name": "c1"}, headers=key).is_success
        document = http.get("/openapi.json", headers=key).json()
        verbs = {verb.upper() for operations in document["paths"].values() for verb in operations}
        assert "PATCH" in verbs
        for verb in sorted(verbs | {"HEAD"}):
            answer = preflight(http, verb, "/api/v1/collections/c1", ["authorization"])
            assert answer.status_code == 200, (verb, answer.text)
            assert verb in answer.headers["access-control-allow-methods"]
        for path, extra in (
            ("/v1/embeddings", OPENAI_SDK_HEADERS),
            ("/v2/embed", COHERE_SDK_HEADERS),
            ("/v1/rerank", COHERE_SDK_HEADERS),
        ):
            headers = ["authorization", "content-type", *extra]
            answer = preflight(http, "POST", path, headers)
            assert answer.status_code == 200, (path, answer.text)
            allowed = answer.headers["access-control-allow-headers"].lower()
            assert set(headers) <= {h.strip() for h in allowed.split(",")}, path
        # The preflight opens nothing: the call itself still needs its key.
        sdk_call = {"origin": page, **{name: "1" for name in OPENAI_SDK_HEADERS}}
        body = {"input": "hello"}
        assert http.post("/v1/embeddings", json=body, headers=sdk_call).status_code == 401
        called = http.post("/v1/embeddings", json=body, headers={**sdk_call, **key})
        assert called.status_code == 200
        assert called.headers["access-control-allow-origin"] == page
        patched = http.patch(
            "/api/v1/collections/c1", json={"hnsw_ef": 64}, headers={"origin": page, **key}
        )
        assert patched.status_code == 200, patched.text
        stranger = http.options(
            "/api/v1/collections/c1",
            headers={
                "origin": "https://evil.example.net",
                "access-control-request-method": "PATCH",
            },
        )
        assert stranger.status_code == 400
