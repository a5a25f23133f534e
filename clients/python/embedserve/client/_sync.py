"""Blocking client."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedserve.client._analysis_methods import AnalysisMethods
from embedserve.client._balancing import balancing_options, channel_target
from embedserve.client._options import (
    Vectors,
    as_list,
    batches,
    build_options,
    task_value,
    vectors_of,
)
from embedserve.client._vector_methods import VectorMethods
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc
from embedserve.v1 import vector_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
_MAX_MESSAGE = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


class EmbedClient(VectorMethods, AnalysisMethods):
    """Calls an embedserve server. Vectors come back as float32 numpy arrays.

    Options (``task``, ``prompt``, ``dimensions``, ``normalize``, ``pooling``,
    ``overflow``) default to the model's own settings. The VectorService methods
    (collections, ``upsert``, ``ingest``, ``search``, ``recommend``, ``get``,
    ``delete``, ``count``) are on the same client. Failed calls raise
    ``grpc.RpcError`` with the server's status code and message.
    """

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        timeout: float | None = 300.0,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
    ) -> None:
        # Several addresses or a dns:/// target: round_robin and retries (_balancing.py).
        options = CHANNEL_OPTIONS + balancing_options(target)
        address = channel_target(target)
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._stub = pb_grpc.EmbeddingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._vectors = vector_pb2_grpc.VectorServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None

    def __enter__(self) -> EmbedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call_kwargs(self) -> dict[str, Any]:
        return {"timeout": self._timeout, "metadata": self._metadata}

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 256,
        max_in_flight: int = 4,
        **options: Any,
    ) -> Vectors:
        """Embed texts, ``batch_size`` per request with up to ``max_in_flight`` requests at once.

        Returns an array of shape (len(texts), dimensions), rows in input order.
        """
        built = build_options(**options)
        pending: list[grpc.Future[pb.EmbedResponse]] = []
        results: list[pb.EmbedResponse] = []
        for chunk in batches(as_list(texts), batch_size):
            if len(pending) >= max_in_flight:
                results.append(pending.pop(0).result())
            request = pb.EmbedRequest(inputs=chunk, options=built)
            pending.append(self._stub.Embed.future(request, **self._call_kwargs()))
        results.extend(future.result() for future in pending)
        if not results:
            raise ValueError("texts must not be empty")
        return np.concatenate([vectors_of(r.embeddings, r.dimensions) for r in results])

    def embed_iter(
        self,
        texts: Iterable[str],
        *,
        batch_size: int = 32,
        max_in_flight: int = 8,
        **options: Any,
    ) -> Iterator[Vectors]:
        """Stream any iterable through EmbedStream; yields one vector per text, in order.

        At most ``max_in_flight`` requests of ``batch_size`` texts are outstanding.
        """
        built = build_options(**options)
        slots = threading.Semaphore(max_in_flight)
        done = threading.Event()

        def requests() -> Iterator[pb.EmbedStreamRequest]:
            for index, chunk in enumerate(batches(texts, batch_size)):
                while not slots.acquire(timeout=0.1):
                    if done.is_set():
                        return
                yield pb.EmbedStreamRequest(request_id=str(index), inputs=chunk, options=built)

        responses = self._stub.EmbedStream(requests(), metadata=self._metadata)
        try:
            for expected, response in enumerate(responses):
                if response.request_id != str(expected):
                    raise RuntimeError(
                        f"stream out of order: got {response.request_id!r}, expected {expected}"
                    )
                slots.release()
                yield from vectors_of(response.embeddings, response.dimensions)
        finally:
            done.set()
            responses.cancel()

    def embed_tokens(self, texts: str | Sequence[str], **options: Any) -> pb.EmbedTokensResponse:
        request = pb.EmbedTokensRequest(inputs=as_list(texts), options=build_options(**options))
        response: pb.EmbedTokensResponse = self._stub.EmbedTokens(request, **self._call_kwargs())
        return response

    def tokenize(
        self, texts: str | Sequence[str], *, task: Any = None, prompt: str | None = None
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(inputs=as_list(texts), task=task_value(task))
        if prompt is not None:
            request.prompt = prompt
        response: pb.TokenizeResponse = self._stub.Tokenize(request, **self._call_kwargs())
        return response

    def similarity(
        self,
        query: str | None = None,
        candidates: Sequence[str] | None = None,
        *,
        pairs: Sequence[tuple[str, str]] | None = None,
        **options: Any,
    ) -> Vectors:
        """Cosine scores of ``query`` against ``candidates``, or of each of ``pairs``."""
        request = pb.SimilarityRequest(options=build_options(**options))
        if pairs is not None:
            request.pairs.pairs.extend(pb.TextPair(a=a, b=b) for a, b in pairs)
        else:
            request.query_candidates.query = query or ""
            request.query_candidates.candidates.extend(candidates or [])
        response: pb.SimilarityResponse = self._stub.Similarity(request, **self._call_kwargs())
        return np.array(response.scores, dtype=np.float32)

    def model_info(self) -> pb.GetModelInfoResponse:
        response: pb.GetModelInfoResponse = self._stub.GetModelInfo(
            pb.GetModelInfoRequest(), **self._call_kwargs()
        )
        return response

    def health(self, service: str = "") -> str:
        """'SERVING', 'NOT_SERVING', ... as the standard health service reports it."""
        reply = self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10, metadata=self._metadata
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def wait_until_serving(self, timeout: float = 300.0) -> None:
        """Block until health reports SERVING (the model is loaded and warm)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not SERVING after {timeout} s")
            time.sleep(0.2)
