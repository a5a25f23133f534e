"""API keys and roles against a real server: every role against every RPC."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from http_routes import REQUESTS, status_of
from raw_grpc import raw_call
from rpcs import CALLS, bearer, code_of
from running_server import free_port

from embedserve.client import EmbedClient
from embedserve.server.auth import METHOD_ROLES, ROUTE_METHODS, AuthSettings, Role, load_keys
from embedserve.server.errors import FailedPrecondition
from embedserve.v1 import embedding_pb2, vector_pb2

KEYS = {"read": "r-secret-1", "write": "w-secret-2", "admin": "a-secret-3"}
LIMITED = "l-secret-4"  # write role, only collection "mine"
# admin role, only "mine" and the aliases "mine-latest" and "docs-latest"
LIMITED_ADMIN = "la-secret-5"

ADMIN_ONLY = {"CreateCollection", "UpdateCollection", "DeleteCollection", "UpdateAliases"}
# Cluster can write labels into payloads.
WRITE_ONLY = {"Upsert", "Ingest", "IngestStream", "Delete", "UpdatePayload", "Cluster"}


def needed(method: str) -> str:
    name = method.rsplit("/", 1)[1]
    return "admin" if name in ADMIN_ONLY else "write" if name in WRITE_ONLY else "read"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    lines = [f"{key} {role}" for role, key in KEYS.items()]
    limited = f"{LIMITED} write mine\n{LIMITED_ADMIN} admin mine mine-latest docs-latest\n"
    path.write_text("# comment\n" + "\n".join(lines) + "\n" + limited)
    return path


@pytest.fixture
def server(
    start_server: Callable[..., Any], minilm_model: Any, keys_file: Path, tiny_reranker_path: Path
) -> Any:
    running = start_server(
        loaded=minilm_model,
        api_keys_file=str(keys_file),
        http_port=free_port(),
        reranker=str(tiny_reranker_path),
    )
    with EmbedClient(running.target, api_key=KEYS["admin"]) as admin:
        for name in ("docs", "mine"):
            admin.create_collection(name)
    return running


@pytest.fixture
def channel(server: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    assert server.server.http is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server.http.port}", timeout=60) as c:
        yield c


def test_table_covers_every_route(server: Any) -> None:
    """Every HTTP route in the OpenAPI document mirrors an RPC of the one role table."""
    assert server.server.http is not None
    paths = server.server.http.app.openapi()["paths"]
    routes = {f"{verb.upper()} {path}" for path, ops in paths.items() for verb in ops}
    assert routes - {"GET /health", "GET /"} == set(ROUTE_METHODS) == set(REQUESTS)
    assert set(ROUTE_METHODS.values()) <= set(METHOD_ROLES)


def test_table_covers_every_rpc() -> None:
    for service in (
        embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        vector_pb2.DESCRIPTOR.services_by_name["VectorService"],
    ):
        for method in service.methods:
            full = f"/{service.full_name}/{method.name}"
            assert full in METHOD_ROLES
            assert full in CALLS
            assert METHOD_ROLES[full].name.lower() == needed(full)


def test_role_matrix(channel: grpc.Channel) -> None:
    rank = {"read": 1, "write": 2, "admin": 3}
    failures = []
    for role, key in KEYS.items():
        for method, call in CALLS.items():
            code = code_of(call, channel, bearer(key), "docs")
            allowed = rank[role] >= rank[needed(method)]
            expected_ok = code not in {
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            }
            if allowed != expected_ok or (
                not allowed and code != grpc.StatusCode.PERMISSION_DENIED
            ):
                failures.append((role, method, code))
            # The permitted calls really work, not just "not denied".
            works = method.endswith(("/Embed", "/Search", "/Upsert", "/IngestStream", "/Rerank"))
            if allowed and works and code != grpc.StatusCode.OK:
                failures.append((role, method, code))
    assert failures == []


def test_role_matrix_over_http(http: httpx.Client) -> None:
    rank = {"read": 1, "write": 2, "admin": 3}
    failures = []
    for role, key in KEYS.items():
        for route in REQUESTS:
            status = status_of(http, route, "docs", key)
            allowed = rank[role] >= rank[needed(ROUTE_METHODS[route])]
            # Permitted calls get through; these ones must really work, not just "not denied".
            works = route.endswith(
                ("/embeddings", "/embed", "/search", "/upsert", "/ingest", "/rerank")
            )
            if allowed and (status in {401, 403} or status >= 500 or (works and status != 200)):
                failures.append((role, route, status))
            if not allowed and status != 403:
                failures.append((role, route, status))
    assert failures == []


def test_http_missing_and_wrong_keys(http: httpx.Client) -> None:
    for route in REQUESTS:
        for key, scheme in ((None, ""), ("wrong", "Bearer"), (KEYS["admin"], "Basic")):
            assert status_of(http, route, "docs", key, scheme) == 401, (route, key, scheme)
    reply = http.post("/v1/embeddings", json={"input": "x"})
    assert reply.json()["error"]["type"] == "authentication_error"
    assert reply.headers["www-authenticate"] == "Bearer"  # as HTTP asks of a 401
    denied = http.post("/api/v1/collections", json={"name": "x"}, headers=_auth(KEYS["read"]))
    assert denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "needs role admin" in denied.json()["error"]["message"]


def test_http_checks_the_key_before_reading_the_body(http: httpx.Client) -> None:
    """FastAPI parses a body before it runs the key's check: a body that was no JSON, sent
    compressed or in another charset was answered 400/415/422 to a caller without a key."""
    bodies: list[tuple[bytes, dict[str, str]]] = [
        (b"{not json", {"content-type": "application/json"}),
        (b"\x1f\x8b", {"content-type": "application/json", "content-encoding": "gzip"}),
        (b"{}", {"content-type": "application/json; charset=utf-16le"}),
    ]
    taking_bodies = [route for route, (_, _, body) in REQUESTS.items() if body is not None]
    assert len(taking_bodies) > 20
    for route in taking_bodies:
        verb, path, _ = REQUESTS[route]
        for content, headers in bodies:
            for key in (None, "wrong"):
                sent = {**headers, **({"authorization": f"Bearer {key}"} if key else {})}
                reply = http.request(
                    verb, path.replace("{c}", "docs"), content=content, headers=sent
                )
                assert reply.status_code == 401, (route, content, key, reply.text)
    # With the key, the body's fault is named.
    reply = http.post("/api/v1/embed", content=b"{not json", headers=_auth(KEYS["read"]))
    assert reply.status_code == 400


def test_http_collection_allow_list(http: httpx.Client) -> None:
    for route in REQUESTS:
        if needed(ROUTE_METHODS[route]) == "admin" or "{name}" not in route:
            continue
        assert status_of(http, route, "mine", LIMITED) not in {401, 403}, route
        assert status_of(http, route, "docs", LIMITED) == 403, route
    names = http.get("/api/v1/collections", headers=_auth(LIMITED)).json()["names"]
    assert names == ["mine"]


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_missing_and_wrong_keys_are_unauthenticated(channel: grpc.Channel) -> None:
    for method, call in CALLS.items():
        for metadata in ((), bearer("wrong"), (("authorization", f"Basic {KEYS['admin']}"),)):
            assert code_of(call, channel, metadata, "docs") == grpc.StatusCode.UNAUTHENTICATED, (
                method,
                metadata,
            )


def test_bytes_that_do_not_parse_are_refused_for_the_key_first(channel: grpc.Channel) -> None:
    """Unary calls were answered how their bytes failed to parse (naming the method's
    message type) before the key was looked at: INVALID_ARGUMENT to a caller with none."""
    garbage = b"\xff\xff\xff"  # a field tag cut short: no message of any type
    services = [
        *embedding_pb2.DESCRIPTOR.services_by_name.values(),
        *vector_pb2.DESCRIPTOR.services_by_name.values(),
    ]
    methods = [method for service in services for method in service.methods]
    assert len(methods) == len(METHOD_ROLES)
    for method in methods:
        refusals = [
            raw_call(channel, method, garbage, metadata=key) for key in ((), bearer("wrong"))
        ]
        assert [r and r.code() for r in refusals] == [grpc.StatusCode.UNAUTHENTICATED] * 2, (
            method.full_name
        )
        error = raw_call(channel, method, garbage, metadata=bearer(KEYS["admin"]))
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid message for" in (error.details() or "")
        error = raw_call(channel, method, garbage, metadata=bearer(KEYS["read"]))
        reads = needed(f"/{method.name}") == "read"
        expected = grpc.StatusCode.INVALID_ARGUMENT if reads else grpc.StatusCode.PERMISSION_DENIED
        assert error is not None and error.code() == expected, method.full_name


def test_permission_denied_names_the_role(server: Any) -> None:
    with (
        EmbedClient(server.target, api_key=KEYS["read"]) as client,
        pytest.raises(grpc.RpcError) as info,
    ):
        client.create_collection("x")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs role admin" in info.value.details()
    assert "read" in info.value.details()


def test_collection_allow_list(channel: grpc.Channel) -> None:
    md = bearer(LIMITED)
    for method, call in CALLS.items():
        if needed(method) == "admin" or method.endswith("ListCollections"):
            continue
        own = code_of(call, channel, md, "mine")
        assert own not in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}, (
            method
        )
        if "VectorService" in method:
            assert code_of(call, channel, md, "docs") == grpc.StatusCode.PERMISSION_DENIED, method


def test_list_collections_shows_only_allowed(server: Any) -> None:
    with EmbedClient(server.target, api_key=LIMITED) as client:
        assert client.list_collections() == ["mine"]
    with EmbedClient(server.target, api_key=KEYS["read"]) as client:
        assert {"docs", "mine"} <= set(client.list_collections())


def test_a_limited_key_changes_and_sees_only_the_aliases_its_list_names(server: Any) -> None:
    """Its list names both the aliases it may use and the collections they may name."""
    with (
        EmbedClient(server.target, api_key=LIMITED_ADMIN) as limited,
        EmbedClient(server.target, api_key=KEYS["admin"]) as admin,
    ):
        limited.update_aliases(set={"mine-latest": "mine"})
        for change in ({"docs-latest": "docs"}, {"docs-other": "mine"}):
            with pytest.raises(grpc.RpcError) as info:
                limited.update_aliases(set=change)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, change
        admin.update_aliases(set={"docs-latest": "docs", "docs-other": "docs"})
        with pytest.raises(grpc.RpcError) as info:
            limited.update_aliases(delete=["docs-other"])
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # "docs-latest" is on its list, though what it names is not.
        assert limited.list_aliases() == {"docs-latest": "docs", "mine-latest": "mine"}
        assert limited.count("docs-latest") == 0
        assert admin.list_aliases() == {
            "docs-latest": "docs",
            "docs-other": "docs",
            "mine-latest": "mine",
        }
        # A collection's own answer names only the aliases its list holds, as ListAliases.
        assert list(limited.get_collection("docs-latest").aliases) == ["docs-latest"]
        assert list(admin.get_collection("docs-latest").aliases) == ["docs-latest", "docs-other"]
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server.http.port}") as http:
        described = http.get("/api/v1/collections/docs-latest", headers=_auth(LIMITED_ADMIN))
        assert described.json()["collection"]["aliases"] == ["docs-latest"], described.text
        shown = http.get("/api/v1/aliases", headers=_auth(LIMITED)).json()["aliases"]
        assert shown == []
        other = http.get("/api/v1/aliases?collection=docs", headers=_auth(LIMITED))
        assert other.status_code == 403
        denied = http.post(
            "/api/v1/aliases", json={"set": {"mine-latest": "docs"}}, headers=_auth(LIMITED_ADMIN)
        )
        assert denied.status_code == 403


def test_ingest_stream_collection_checked_per_message(server: Any) -> None:
    docs = [{"id": f"x{i}", "text": f"text {i}"} for i in range(3)]
    with EmbedClient(server.target, api_key=LIMITED) as client:
        acks = list(client.ingest_iter("mine", docs, batch_size=1))
        assert len(acks) == 3
        with pytest.raises(grpc.RpcError) as info:
            list(client.ingest_iter("docs", docs, batch_size=1))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def list_services(channel: grpc.Channel, metadata: Any = ()) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), metadata=metadata))
    return [s.name for s in reply.list_services_response.service]


def test_health_and_reflection_open_by_default(server: Any, channel: grpc.Channel) -> None:
    with EmbedClient(server.target) as client:
        assert client.health() == "SERVING"
    assert "embedserve.v1.VectorService" in list_services(channel)


def test_auth_health(start_server: Callable[..., Any], minilm_model: Any) -> None:
    running = start_server(loaded=minilm_model, api_keys=f"{KEYS['read']} read", auth_health=True)
    with grpc.insecure_channel(running.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = health.Check(health_pb2.HealthCheckRequest(), metadata=bearer(KEYS["read"]))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            list_services(channel)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "embedserve.v1.EmbeddingService" in list_services(channel, bearer(KEYS["read"]))


def test_no_keys_auth_off(minilm_server: Any) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("open")
        assert "open" in client.list_collections()


def test_key_formats(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            [
                {"key": "k1", "role": "admin"},
                {"key": "k2", "role": "read", "collections": ["a", "b"]},
            ]
        )
    )
    ring = load_keys(AuthSettings(api_keys_file=str(path), api_keys="k3 write c;  k4 read "))
    assert len(ring) == 4
    assert ring.lookup("k1").role == Role.ADMIN  # type: ignore[union-attr]
    assert ring.lookup("k2").collections == {"a", "b"}  # type: ignore[union-attr]
    assert ring.lookup("k3").collections == {"c"}  # type: ignore[union-attr]
    assert ring.lookup("k4").role == Role.READ  # type: ignore[union-attr]
    assert ring.lookup("k") is None
    assert ring.lookup("") is None
    with pytest.raises(FailedPrecondition, match="unknown role"):
        load_keys(AuthSettings(api_keys="k5 superuser"))
    with pytest.raises(FailedPrecondition, match="unknown role 'admn'"):  # a misspelt role
        load_keys(AuthSettings(api_keys="k5 admn"))
    with pytest.raises(FailedPrecondition) as swapped:  # "role key": the key is not echoed
        load_keys(AuthSettings(api_keys="admin swapped-secret-8888"))
    assert "swapped-secret-8888" not in swapped.value.message
    assert "lines are 'key role'" in swapped.value.message
    with pytest.raises(FailedPrecondition) as info:
        load_keys(AuthSettings(api_keys="lonely-secret"))
    assert "lonely-secret" not in info.value.message


def test_keys_never_logged(
    start_server: Callable[..., Any],
    minilm_model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    running = start_server(loaded=minilm_model, api_keys="never-log-me admin")
    with EmbedClient(running.target, api_key="never-log-me") as client:
        client.embed(["x"])
    with (
        EmbedClient(running.target, api_key="wrong-never-log") as client,
        pytest.raises(grpc.RpcError),
    ):
        client.embed(["x"])
    assert "never-log-me" not in caplog.text
    assert "wrong-never-log" not in caplog.text
    assert "never-log-me" not in repr(running.server.settings)


def test_warns_without_keys_on_public_host(
    start_server: Callable[..., Any], minilm_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    start_server(loaded=minilm_model, host="0.0.0.0")
    assert "without API keys" in caplog.text
