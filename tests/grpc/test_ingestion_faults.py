"""Ingestion under store faults: transient errors are retried, a dead store ends the stream."""

from __future__ import annotations

import threading

import grpc
import pytest
from labelled_corpus import documents

from embedserve.client import EmbedClient
from embedserve.connectors import RetryingStore, RetryPolicy, StoreFull, TransientStoreError


class FlakyStore:
    """Wraps a real store; its upserts fail with a transient error while ``failures`` > 0.

    A store outage cannot be produced for real in-process, so this is the one fake here.
    """

    def __init__(self, inner, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.attempts = 0
        self.error: Exception = TransientStoreError("connection reset by peer (injected)")
        self._lock = threading.Lock()

    def upsert(self, collection, points):
        with self._lock:
            self.attempts += 1
            if self.failures > 0:
                self.failures -= 1
                raise self.error
        return self.inner.upsert(collection, points)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def inject(server, failures: int, policy: RetryPolicy) -> FlakyStore:
    core = server.server.vector_service._core
    flaky = FlakyStore(core.store.inner, failures)
    core.store = RetryingStore(flaky, policy)
    return flaky


FAST_RETRY = RetryPolicy(max_attempts=4, max_total_s=5, initial_backoff_s=0.01, max_backoff_s=0.05)


def test_transient_store_errors_are_retried_and_the_stream_completes(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("docs")
        flaky = inject(minilm_server, failures=3, policy=FAST_RETRY)
        total = client.ingest("docs", documents(20), batch_size=10)
        assert total == 100
        assert flaky.attempts > 3
        assert client.count("docs") == 100


def test_a_store_that_stays_down_ends_the_stream_naming_the_last_ack(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("docs")
        corpus = documents(20)
        flaky = inject(minilm_server, failures=0, policy=FAST_RETRY)
        acked: list[str] = []
        with pytest.raises(grpc.RpcError) as error:
            for ack in client.ingest_iter("docs", corpus, batch_size=10, max_in_flight=1):
                acked.extend(ack.ids)
                if len(acked) == 30:
                    flaky.failures = 10**6  # the store goes down for good
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert len(acked) == 30
        assert f"last acknowledged document: {acked[-1]!r}" in error.value.details()
        assert "after 4 attempts" in error.value.details()
        flaky.failures = 0
        assert client.count("docs") >= 30
        assert len(client.get("docs", acked)) == 30


def test_a_full_disk_ends_the_stream_at_once_with_resource_exhausted(minilm_server) -> None:
    """A full disk is produced for real in tests/connectors/test_process_store.py; here, how
    the stream reports it: not retried, not UNAVAILABLE (which clients retry), the last ack."""
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("docs")
        flaky = inject(minilm_server, failures=0, policy=FAST_RETRY)
        flaky.error = StoreFull("the file system of the data directory is full (injected)")
        acked: list[str] = []
        with pytest.raises(grpc.RpcError) as error:
            for ack in client.ingest_iter("docs", documents(20), batch_size=10, max_in_flight=1):
                acked.extend(ack.ids)
                if len(acked) == 20:
                    flaky.failures, flaky.attempts = 10**6, 0
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "is full (injected)" in error.value.details()
        assert f"last acknowledged document: {acked[-1]!r}" in error.value.details()
        assert flaky.attempts == 1
        flaky.failures = 0
        assert len(client.get("docs", acked)) == 20


def test_a_killed_qdrant_server_ends_the_stream_and_keeps_every_acknowledged_document(
    start_server, minilm_model, tmp_path
) -> None:
    """The outage for real: the Qdrant server behind embedserve gets SIGKILL mid-stream."""
    from qdrant_server import qdrant_binary, start_single

    qdrant = start_single(qdrant_binary(), tmp_path / "qdrant")
    try:
        server = start_server(
            loaded=minilm_model,
            **qdrant.endpoint.settings(),
            # Retries give the client's channel time to reconnect once the server is back.
            store_retry_attempts=8,
            store_retry_max_s=6,
            qdrant_timeout_s=2,
        )
        corpus = documents(20)
        with EmbedClient(server.target) as client:
            client.create_collection("docs")
            acked: list[str] = []
            with pytest.raises(grpc.RpcError) as error:
                for ack in client.ingest_iter("docs", corpus, batch_size=10, max_in_flight=1):
                    acked.extend(ack.ids)
                    if len(acked) == 30:
                        qdrant.kill()
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            assert 30 <= len(acked) < len(corpus)
            assert f"last acknowledged document: {acked[-1]!r}" in error.value.details()

            qdrant.start()  # the same storage and ports
            assert {d.id for d in client.get("docs", acked)} == set(acked)
            rest = [d for d in corpus if d["id"] not in set(acked)]
            client.ingest("docs", rest, batch_size=10)
            assert client.count("docs") == len(corpus)
    finally:
        qdrant.stop()
