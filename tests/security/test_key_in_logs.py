"""Logs name the key a call was made with by its key_id, a short hash (the README: "logs
name a key by a short hash"): its access log line, over gRPC and HTTP, and the JSON
lines' ``key_id`` field. They named no key at all; they never name the key itself."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from log_capture import captured_log
from running_server import free_port

from embedserve.server.auth import ApiKey, Role
from embedserve.v1 import embedding_pb2, embedding_pb2_grpc, vector_pb2, vector_pb2_grpc

SECRET = "alice-secret-never-logged"
KEY_ID = ApiKey(SECRET, Role.READ).key_id


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    with captured_log("json") as stream:
        yield stream


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    with captured_log("text") as stream:
        yield stream


def access_lines(stream: io.StringIO, request_id: str) -> list[dict[str, Any]]:
    """The access line of the call with ``request_id`` (HTTP's is written just after its
    answer went out: waited for)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        mine = [
            line
            for line in lines
            if line["logger"] == "embedserve.access" and line.get("request_id") == request_id
        ]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def embed(target: str, request_id: str, key: str, inputs: list[str]) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        metadata = (("x-request-id", request_id), ("authorization", f"Bearer {key}"))
        try:
            stub.Embed(embedding_pb2.EmbedRequest(inputs=inputs), metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


@pytest.fixture
def server(start_server: Callable[..., Any], minilm_model: Any) -> Any:
    return start_server(loaded=minilm_model, api_keys=f"{SECRET} read", http_port=free_port())


def test_access_lines_name_the_key_by_its_key_id(server: Any, json_log: io.StringIO) -> None:
    assert embed(server.target, "grpc-ok", SECRET, ["hi"]) == grpc.StatusCode.OK
    # A call let in with the key and failing after: its line names the key too.
    assert embed(server.target, "grpc-bad", SECRET, []) == grpc.StatusCode.INVALID_ARGUMENT
    assert embed(server.target, "grpc-nokey", "wrong", ["hi"]) == grpc.StatusCode.UNAUTHENTICATED
    http_url = f"http://127.0.0.1:{server.server.http.port}"

    def post(path: str, body: dict[str, Any], request_id: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {SECRET}", "x-request-id": request_id}
        return httpx.post(f"{http_url}{path}", json=body, headers=headers, timeout=60)

    reply = post("/v1/embeddings", {"input": "hello"}, "http-ok")
    assert reply.status_code == 200, reply.text
    # Refused for its role: the line names the key refused.
    with grpc.insecure_channel(server.target) as channel:
        create = vector_pb2_grpc.VectorServiceStub(channel).CreateCollection
        metadata = (("x-request-id", "grpc-role"), ("authorization", f"Bearer {SECRET}"))
        with pytest.raises(grpc.RpcError) as refused:
            create(vector_pb2.CreateCollectionRequest(name="c"), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = post("/api/v1/collections", {"name": "c"}, "http-role")
    assert denied.status_code == 403, denied.text

    for request_id in ("grpc-ok", "grpc-bad", "http-ok", "grpc-role", "http-role"):
        (line,) = access_lines(json_log, request_id)
        assert line["key_id"] == KEY_ID, line
        assert line["message"].endswith(f" ms {KEY_ID}"), line
    (unknown,) = access_lines(json_log, "grpc-nokey")  # no key was let in: none named
    assert "key_id" not in unknown and "key-" not in unknown["message"]
    assert SECRET not in json_log.getvalue()


def test_a_text_access_line_names_the_key_id(server: Any, text_log: io.StringIO) -> None:
    assert embed(server.target, "text-ok", SECRET, ["hi"]) == grpc.StatusCode.OK
    lines = [line for line in text_log.getvalue().splitlines() if "[request_id=text-ok]" in line]
    assert any(" embedserve.access: " in line and f"ms {KEY_ID} " in line for line in lines)
    assert SECRET not in text_log.getvalue()
