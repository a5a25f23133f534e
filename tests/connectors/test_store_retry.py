"""Retries: transient failures are retried within bounds, everything else passes through."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from embedserve.connectors import (
    AliasNotFound,
    CollectionExists,
    CollectionNotFound,
    CollectionSpec,
    CollectionUpdate,
    EdgeStore,
    InvalidRequest,
    PayloadIndexKind,
    PointRecord,
    RemoteStore,
    RetryingStore,
    RetryPolicy,
    StoreUnavailable,
    TransientStoreError,
    VectorStore,
    call_with_retry,
)

FAST = RetryPolicy(max_attempts=4, max_total_s=5.0, initial_backoff_s=0.001, max_backoff_s=0.01)


class Faulty:
    """A real store behind a fault: the first ``failures`` calls raise TransientStoreError.

    With ``after=True`` the call is made first and the failure reported afterwards, like a
    reply lost on the way back.
    """

    def __init__(self, inner: VectorStore, failures: int, *, after: bool = False) -> None:
        self.inner = inner
        self.failures = failures
        self.after = after
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) > self.failures:
                return method(*args, **kwargs)
            if self.after:
                method(*args, **kwargs)
            raise TransientStoreError(f"injected fault #{len(self.calls)}")

        return call


def retrying(faulty: Faulty, policy: RetryPolicy = FAST) -> RetryingStore:
    return RetryingStore(cast(VectorStore, faulty), policy)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeStore]:
    with EdgeStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", vector_size=2))
        yield store


def test_transient_failures_are_retried_until_success(edge: EdgeStore) -> None:
    faulty = Faulty(edge, failures=3)
    store = retrying(faulty)
    store.upsert("c", [PointRecord("a", [1.0, 0.0]), PointRecord("b", [0.0, 1.0])])
    assert faulty.calls == ["upsert"] * 4
    assert store.count("c") == 2


def test_store_that_stays_down_raises_unavailable(edge: EdgeStore) -> None:
    faulty = Faulty(edge, failures=10**9)
    store = retrying(faulty)
    with pytest.raises(StoreUnavailable, match="after 4 attempts") as err:
        store.count("c")
    assert err.value.attempts == 4
    assert len(faulty.calls) == 4
    assert isinstance(err.value.last_error, TransientStoreError)
    assert isinstance(err.value.__cause__, TransientStoreError)


def test_total_time_bound(edge: EdgeStore) -> None:
    policy = RetryPolicy(max_attempts=10**6, max_total_s=0.3, initial_backoff_s=0.02)
    faulty = Faulty(edge, failures=10**9)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        retrying(faulty, policy).list_collections()
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert 1 < err.value.attempts == len(faulty.calls) < 100


def test_non_transient_errors_are_not_retried(edge: EdgeStore) -> None:
    faulty = Faulty(edge, failures=0)
    store = retrying(faulty)
    with pytest.raises(CollectionNotFound):
        store.count("missing")
    with pytest.raises(CollectionExists):
        store.create_collection(CollectionSpec("c", vector_size=2))
    assert faulty.calls == ["count", "create_collection"]


def test_lost_replies_of_create_and_delete_are_recognised(edge: EdgeStore) -> None:
    spec = CollectionSpec("new", vector_size=3)
    retrying(Faulty(edge, 1, after=True)).create_collection(spec)
    assert edge.get_collection("new").spec == spec
    retrying(Faulty(edge, 1, after=True)).delete_collection("new")
    assert "new" not in edge.list_collections()
    # A different collection already under that name is a real conflict.
    edge.create_collection(CollectionSpec("other", vector_size=5))
    with pytest.raises(CollectionExists):
        retrying(Faulty(edge, 0)).create_collection(CollectionSpec("other", vector_size=3))


def test_a_lost_reply_of_an_alias_change_is_recognised(edge: EdgeStore) -> None:
    edge.update_aliases({"old": "c"})
    # Made on the first attempt; the second finds "old" gone and the rest in place.
    retrying(Faulty(edge, 1, after=True)).update_aliases({"new": "c"}, ["old"])
    assert edge.list_aliases() == {"new": "c"}
    with pytest.raises(AliasNotFound):  # missing on the first attempt: the caller's mistake
        retrying(Faulty(edge, 0)).update_aliases({"new": "c"}, ["old"])


def test_a_lost_reply_of_an_index_drop_is_recognised(edge: EdgeStore) -> None:
    edge.update_collection(
        "c", CollectionUpdate(add_payload_indexes={"k": PayloadIndexKind.KEYWORD})
    )
    drop = CollectionUpdate(drop_payload_indexes=("k",))
    retrying(Faulty(edge, 1, after=True)).update_collection("c", drop)
    assert edge.get_collection("c").spec.payload_indexes == {}
    with pytest.raises(InvalidRequest, match="no payload index"):  # the caller's mistake
        retrying(Faulty(edge, 0)).update_collection("c", drop)


def test_backoff_grows_capped_with_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=6, max_total_s=100, initial_backoff_s=0.1, max_backoff_s=0.5)
    assert [policy.backoff(n, rand=lambda: 1.0) for n in range(1, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.5, 0.5]
    )
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0
    sleeps: list[float] = []

    def always_down(attempt: int) -> None:
        raise TransientStoreError(f"down {attempt}")

    with pytest.raises(StoreUnavailable) as err:
        call_with_retry(always_down, policy, sleep=sleeps.append)
    assert err.value.attempts == 6
    assert len(sleeps) == 5
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [0.1, 0.2, 0.4, 0.5, 0.5], strict=True))


# ---------------------------------------------------------- real network failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("prefer_grpc", [True, False], ids=["grpc", "rest"])
def test_refused_connection_is_transient(prefer_grpc: bool) -> None:
    port = _free_port()  # nothing listens there
    store = RemoteStore.connect(
        f"http://127.0.0.1:{port}", prefer_grpc=prefer_grpc, grpc_port=port, timeout_s=2
    )
    with store:
        with pytest.raises(TransientStoreError, match=r"(?i)unavailable|unreachable|refused"):
            store.list_collections()
        with pytest.raises(StoreUnavailable) as err:
            RetryingStore(store, FAST).count("c")
        assert err.value.attempts == FAST.max_attempts


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("prefer_grpc", [True, False], ids=["grpc", "rest"])
def test_timeout_is_transient(black_hole: int, prefer_grpc: bool) -> None:
    url = f"http://127.0.0.1:{black_hole}"
    with RemoteStore.connect(
        url, prefer_grpc=prefer_grpc, grpc_port=black_hole, timeout_s=1
    ) as store:
        started = time.monotonic()
        with pytest.raises(TransientStoreError, match=r"(?i)timeout|deadline|unavailable"):
            store.list_collections()
        assert time.monotonic() - started < 10


def test_calls_succeed_soon_after_a_long_qdrant_outage(tmp_path: Path) -> None:
    """gRPC spaces its attempts to reconnect further and further apart while the server is
    down; the store's channel caps that gap, so calls work again once Qdrant is back."""
    from qdrant_server import qdrant_binary, start_single

    qdrant = start_single(qdrant_binary(), tmp_path / "qdrant")
    endpoint = qdrant.endpoint
    try:
        with RemoteStore.connect(
            endpoint.url, api_key=endpoint.api_key, grpc_port=endpoint.grpc_port, timeout_s=2
        ) as store:
            store.list_collections()
            qdrant.kill()
            # With gRPC's defaults the next attempt after 20 s down comes about 6 s later.
            down_until = time.monotonic() + 20
            while time.monotonic() < down_until:
                with pytest.raises(TransientStoreError):
                    store.list_collections()
                time.sleep(0.2)
            qdrant.start()  # the same ports; returns once the server answers
            back = time.monotonic()
            while True:
                try:
                    store.list_collections()
                    break
                except TransientStoreError:
                    assert time.monotonic() - back < 3, "still failing 3 s after Qdrant came back"
                    time.sleep(0.02)
    finally:
        qdrant.stop()
