"""Server replies that local mode cannot produce map onto the StoreError hierarchy.

The messages are the ones a Qdrant server sends (REST bodies and gRPC details).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from connectors_testdata import StoreFactory
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from embedserve.connectors import (
    CollectionExists,
    CollectionNotFound,
    CollectionSpec,
    DimensionMismatch,
    InvalidRequest,
    PointNotFound,
    RemoteStore,
    StoreError,
    StoreFull,
    StoreRefused,
    TransientStoreError,
    point_id,
)
from embedserve.connectors._remote_convert import (
    ErrorContext,
    OutcomeUnknown,
    change_in_doubt,
    client_errors,
)

GHOST = point_id("ghost")


def http_error(status: int, message: str) -> UnexpectedResponse:
    body = json.dumps({"status": {"error": message}, "time": 0.001}).encode()
    return UnexpectedResponse(status, "", body, httpx.Headers())


class ServerRpcError(grpc.RpcError):
    """The shape of the error grpc raises for a failed call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


# As Qdrant 1.18 words a write it has no room to log.
NO_SPACE = "No space left on device: WAL buffer size exceeds available disk space"

CASES: list[tuple[BaseException, type[StoreError]]] = [
    (http_error(404, "Not found: Collection `docs` doesn't exist!"), CollectionNotFound),
    (http_error(409, "Wrong input: Collection `docs` already exists!"), CollectionExists),
    (
        http_error(400, "Wrong input: Vector dimension error: expected dim: 4, got 3"),
        DimensionMismatch,
    ),
    (http_error(404, f"Not found: No point with id {GHOST} found"), PointNotFound),
    (http_error(400, 'Bad request: Index required but not found for "n"'), InvalidRequest),
    (http_error(503, "Service unavailable"), TransientStoreError),
    (http_error(429, "Too many requests"), TransientStoreError),
    (http_error(500, "Service internal error: boom"), StoreError),
    (http_error(500, f"Service internal error: {NO_SPACE}"), StoreFull),
    (ServerRpcError(grpc.StatusCode.INTERNAL, f"Service internal error: {NO_SPACE}"), StoreFull),
    (ResponseHandlingException(httpx.ReadTimeout("timed out")), TransientStoreError),
    (httpx.ConnectError("refused"), TransientStoreError),
    (
        ServerRpcError(grpc.StatusCode.NOT_FOUND, "Not found: Collection `docs` doesn't exist!"),
        CollectionNotFound,
    ),
    (
        ServerRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Wrong input: Vector dimension error: expected dim: 4, got 3",
        ),
        DimensionMismatch,
    ),
    (ServerRpcError(grpc.StatusCode.INVALID_ARGUMENT, "Wrong input: bad"), InvalidRequest),
    (ServerRpcError(grpc.StatusCode.UNAVAILABLE, "connection reset"), TransientStoreError),
    (ServerRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), TransientStoreError),
    # The server's side of the same deadline, when it gets there first.
    (ServerRpcError(grpc.StatusCode.CANCELLED, "Timeout expired"), TransientStoreError),
    (ServerRpcError(grpc.StatusCode.UNAUTHENTICATED, "Invalid api-key"), StoreRefused),
    (ServerRpcError(grpc.StatusCode.PERMISSION_DENIED, "read-only key"), StoreRefused),
    (http_error(401, "Must provide an API key"), StoreRefused),
    (http_error(403, "read-only key"), StoreRefused),
    (ValueError("Collection docs not found"), CollectionNotFound),
    (ValueError(f"Point {GHOST} is not found in the collection"), PointNotFound),
]


@pytest.mark.parametrize(("raised", "expected"), CASES, ids=lambda v: type(v).__name__)
def test_server_errors_map_to_store_errors(
    raised: BaseException, expected: type[StoreError]
) -> None:
    with (
        pytest.raises(StoreError) as err,
        client_errors(ErrorContext("docs", {GHOST: "ghost"})),
    ):
        raise raised
    assert type(err.value) is expected
    assert err.value.__cause__ is raised
    if expected is DimensionMismatch:
        assert isinstance(err.value, DimensionMismatch)
        assert (err.value.expected, err.value.got) == (4, 3)
    if expected is PointNotFound:
        assert isinstance(err.value, PointNotFound)
        assert err.value.ids == ("ghost",)


def test_a_call_the_server_cancels_by_deleting_its_collection_reports_it_missing(
    make_store: StoreFactory,
) -> None:
    """A Qdrant server cancels the calls in flight on a collection it deletes (a race a
    test cannot time, so the cancellation is raised here); others stay StoreErrors."""
    store = make_store("qdrant-server")
    assert isinstance(store, RemoteStore)
    store.create_collection(CollectionSpec("kept", vector_size=2))
    cancelled = ServerRpcError(grpc.StatusCode.CANCELLED, "Stream removed")
    for name, expected in [("kept", StoreError), ("never-made", CollectionNotFound)]:
        with pytest.raises(StoreError) as err, store._call(ErrorContext(name)):
            raise cancelled
        assert type(err.value) is expected
    with pytest.raises(StoreError) as other, store._call(ErrorContext("never-made")):
        raise ServerRpcError(grpc.StatusCode.INTERNAL, "Service internal error")
    assert type(other.value) is StoreError


# As Qdrant 1.18 answers a change its cluster cannot commit in time (a majority of nodes down).
NO_COMMIT = (
    "Service internal error: Waiting for consensus operation commit failed. "
    "Timeout set at: 1 seconds"
)
SENT_NO_ANSWER = [
    ServerRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    ServerRpcError(grpc.StatusCode.CANCELLED, "Timeout expired"),
    ServerRpcError(grpc.StatusCode.INTERNAL, NO_COMMIT),
    http_error(500, NO_COMMIT),
    ResponseHandlingException(httpx.ReadTimeout("timed out")),
]
NOT_SENT_OR_REFUSED = [
    ServerRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
    ResponseHandlingException(httpx.ConnectTimeout("timed out")),
    httpx.ConnectError("refused"),
    http_error(409, "Wrong input: Collection `docs` already exists!"),
]


@pytest.mark.parametrize("raised", SENT_NO_ANSWER, ids=lambda v: type(v).__name__)
def test_a_collection_change_sent_and_not_answered_is_in_doubt(raised: BaseException) -> None:
    """Not a TransientStoreError: a retry would race the change still pending."""
    with (
        pytest.raises(OutcomeUnknown, match=r"^creating 'docs': .*Check it before") as err,
        client_errors(ErrorContext("docs")),
        change_in_doubt("creating 'docs'", "it"),
    ):
        raise raised
    assert not isinstance(err.value, TransientStoreError)


@pytest.mark.parametrize("raised", NOT_SENT_OR_REFUSED, ids=lambda v: type(v).__name__)
def test_a_collection_change_not_sent_or_refused_fails_as_before(raised: BaseException) -> None:
    with (
        pytest.raises(StoreError) as err,
        client_errors(ErrorContext("docs")),
        change_in_doubt("creating 'docs'", "it"),
    ):
        raise raised
    assert not isinstance(err.value, OutcomeUnknown)


def test_a_refused_api_key_fails_the_connection_not_every_call(qdrant_server: Any) -> None:
    """A wrong key was found only by the calls, each UNAVAILABLE (retried by clients and
    balancers) while the server reported itself healthy."""
    if not qdrant_server.api_key:
        pytest.skip("the Qdrant server takes no API key")
    for wrong in ("not-the-key", None):
        with pytest.raises(StoreRefused, match=r"refused embedserve's API key \(qdrant_api_key\)"):
            RemoteStore.connect(qdrant_server.url, api_key=wrong, grpc_port=qdrant_server.grpc_port)
    with RemoteStore.connect(
        qdrant_server.url, api_key=qdrant_server.api_key, grpc_port=qdrant_server.grpc_port
    ) as store:
        assert isinstance(store.list_collections(), list)
    # A server not reachable yet is no refusal: its calls retry it.
    with RemoteStore.connect("http://127.0.0.1:9", grpc_port=9, timeout_s=1):
        pass
