"""A request carrying two ``authorization`` headers is refused on both transports.

gRPC's metadata kept the last value and HTTP's headers gave the first, so one request
[read key, admin key] was refused over HTTP and let in over gRPC (and its role, collection
list, rate-limit bucket and logged key_id followed whichever key its transport picked).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from running_server import free_port

from embedserve.server.auth import ApiKey, Role
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

READ, ADMIN = "dup-read-secret", "dup-admin-secret"
TWICE = "the request has 2 authorization headers; send exactly one"
ORDERS = (
    [("authorization", f"Bearer {READ}"), ("authorization", f"Bearer {ADMIN}")],
    [("authorization", f"Bearer {ADMIN}"), ("authorization", f"Bearer {READ}")],
    [("authorization", f"Bearer {ADMIN}"), ("authorization", f"Bearer {ADMIN}")],
)


def key_id(key: str, role: Role) -> str:
    return ApiKey(key, role).key_id


@pytest.fixture
def server(start_server: Callable[..., Any], minilm_model: Any) -> Any:
    running = start_server(
        loaded=minilm_model,
        api_keys=f"{READ} read; {ADMIN} admin",
        auth_health=True,
        http_port=free_port(),
    )
    with grpc.insecure_channel(running.target) as channel:
        vpb_grpc.VectorServiceStub(channel).CreateCollection(
            vpb.CreateCollectionRequest(name="docs"),
            metadata=[("authorization", f"Bearer {ADMIN}")],
        )
    return running


def grpc_refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_grpc_refuses_two_authorization_values_whichever_comes_last(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with grpc.insecure_channel(server.target) as channel:
        vectors = vpb_grpc.VectorServiceStub(channel)
        embeddings = epb_grpc.EmbeddingServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        for metadata in ORDERS:
            calls = {
                # Admin only: [read, admin] was let in (the last key counted).
                "UpdateCollection": lambda md=metadata: vectors.UpdateCollection(
                    vpb.UpdateCollectionRequest(name="docs", hnsw_ef=64), metadata=md
                ),
                # Either key may: still refused, as over HTTP.
                "Embed": lambda md=metadata: embeddings.Embed(
                    epb.EmbedRequest(inputs=["hi"]), metadata=md
                ),
                "Health": lambda md=metadata: health.Check(
                    health_pb2.HealthCheckRequest(), metadata=md
                ),
            }
            for name, call in calls.items():
                code, details = grpc_refusal(call)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (name, metadata, code)
                assert details.startswith(TWICE), details
        # One header still lets each key in.
        one = [("authorization", f"Bearer {ADMIN}")]
        vectors.UpdateCollection(vpb.UpdateCollectionRequest(name="docs", hnsw_ef=64), metadata=one)
    # The refused calls were made with no key: no log line names either.
    refused = [r.getMessage() for r in caplog.records if "UNAUTHENTICATED" in r.getMessage()]
    assert len(refused) == 9, refused
    for line in refused:
        assert key_id(READ, Role.READ) not in line and key_id(ADMIN, Role.ADMIN) not in line


def test_http_refuses_two_authorization_headers_in_each_routes_shape(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server.http.port}"
    with httpx.Client(base_url=url, timeout=60) as http:
        for headers in ORDERS:
            # Admin only: [admin, read] was let in (the first header counted).
            patched = http.patch("/api/v1/collections/docs", json={"hnsw_ef": 64}, headers=headers)
            assert patched.status_code == 401, patched.text
            error = patched.json()["error"]
            assert error["status"] == "UNAUTHENTICATED"
            assert error["message"].startswith(TWICE), error
            openai = http.post("/v1/embeddings", json={"input": "hi"}, headers=headers)
            assert openai.status_code == 401, openai.text
            assert openai.json()["error"]["type"] == "authentication_error"
            assert openai.json()["error"]["message"].startswith(TWICE)
            tei = http.post("/embed", json={"inputs": "hi"}, headers=headers)
            assert tei.status_code == 401, tei.text
            assert tei.json()["error"].startswith(TWICE)
            cohere = http.post("/v2/embed", json={"texts": ["hi"]}, headers=headers)
            assert (cohere.status_code, cohere.json()["message"][: len(TWICE)]) == (401, TWICE)
            ingest = http.post(
                "/api/v1/collections/docs/ingest",
                content='{"documents": [{"id": "a", "text": "x"}]}\n',
                headers=headers,
            )
            assert ingest.status_code == 401, ingest.text
            health = http.get("/health", headers=headers)  # --auth-health
            assert health.status_code == 401, health.text
        one = {"authorization": f"Bearer {ADMIN}"}
        assert http.patch("/api/v1/collections/docs", json={"hnsw_ef": 64}, headers=one).is_success
        assert http.get("/health", headers=one).is_success
