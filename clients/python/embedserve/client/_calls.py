"""EmbeddingService and health methods, as plans shared by both clients (see _steps)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from embedserve.client._errors import renumbered_in_request, renumbered_in_stream
from embedserve.client._options import (
    OverflowName,
    PrecisionName,
    Quantized,
    Vectors,
    as_list,
    batches,
    build_options,
    check_uint32,
    checked_text,
    checked_texts,
    listed,
    overflow_value,
    precision_value,
    quantized_of,
    refuse_string,
    task_value,
    vectors_of,
)
from embedserve.client._ordered import StreamCall, StreamPlan
from embedserve.client._steps import Pipelined, Plan, Sleep, Unary
from embedserve.v1 import embedding_pb2 as pb

_EMBED_STREAM = StreamCall("embedding", "EmbedStream", "request_id")
Rows = TypeVar("Rows", Vectors, Quantized)


def embed(
    texts: str | Sequence[str],
    *,
    batch_size: int = 256,
    max_in_flight: int = 4,
    **options: Any,
) -> Plan[Vectors]:
    """Embed texts, ``batch_size`` per request with up to ``max_in_flight`` requests at once.

    Returns an array of shape (len(texts), dimensions), rows in input order.
    """
    built = build_options(**options)
    requests = [
        pb.EmbedRequest(inputs=chunk, options=built)
        for chunk in batches(as_list(texts), batch_size)
    ]
    responses: list[pb.EmbedResponse] = yield _split_embed(requests, batch_size, max_in_flight)
    return np.concatenate([vectors_of(r.embeddings, r.dimensions) for r in responses])


def embed_quantized(
    texts: str | Sequence[str],
    precision: PrecisionName,
    *,
    batch_size: int = 256,
    max_in_flight: int = 4,
    **options: Any,
) -> Plan[Quantized]:
    """Embed texts in fewer bits: ``"int8"`` (each vector scaled to -127..127 by its own
    largest value), ``"uint8"`` (int8 plus 128), ``"binary"`` or ``"ubinary"`` (sign bits,
    eight dimensions to a byte, the first in the highest bit; binary's bytes less 128).

    Returns an int8 array (int8, binary) or a uint8 one (uint8, ubinary), a row per text.
    """
    value = precision_value(precision)
    built = build_options(**options)
    requests = [
        pb.EmbedRequest(inputs=chunk, options=built, precision=value)
        for chunk in batches(as_list(texts), batch_size)
    ]
    responses: list[pb.EmbedResponse] = yield _split_embed(requests, batch_size, max_in_flight)
    return np.concatenate([quantized_of(r.embeddings, precision) for r in responses])


def _split_embed(requests: list[pb.EmbedRequest], batch_size: int, max_in_flight: int) -> Pipelined:
    """The Embed requests a list of texts was cut into; the server's error names a text by
    its place in its request, raised naming its place in the caller's list."""
    if not requests:
        raise ValueError("texts must not be empty")

    def failed(number: int, error: Exception) -> Exception:
        return renumbered_in_request(error, number * batch_size)

    return Pipelined("embedding", "Embed", requests, max_in_flight, failed)


def embed_iter(
    texts: Iterable[str] | AsyncIterable[str],
    *,
    batch_size: int = 32,
    max_in_flight: int = 8,
    **options: Any,
) -> StreamPlan[str, Vectors]:
    """Stream texts through EmbedStream; yields one vector per text, in order.

    At most ``max_in_flight`` requests of ``batch_size`` texts are outstanding, so any
    (endless, slow) iterable works; the asyncio client also takes an async iterable.
    """

    def rows(answer: pb.EmbedStreamResponse) -> Vectors:
        return vectors_of(answer.embeddings, answer.dimensions)

    return _embed_stream(texts, pb.PRECISION_UNSPECIFIED, rows, batch_size, max_in_flight, options)


def embed_quantized_iter(
    texts: Iterable[str] | AsyncIterable[str],
    precision: PrecisionName,
    *,
    batch_size: int = 32,
    max_in_flight: int = 8,
    **options: Any,
) -> StreamPlan[str, Quantized]:
    """:meth:`embed_iter` in fewer bits: yields one row of ``precision`` per text, in
    order, as :meth:`embed_quantized` returns them."""
    value = precision_value(precision)

    def rows(answer: pb.EmbedStreamResponse) -> Quantized:
        return quantized_of(answer.embeddings, precision)

    return _embed_stream(texts, value, rows, batch_size, max_in_flight, options)


def _embed_stream(
    texts: Iterable[str] | AsyncIterable[str],
    precision: pb.Precision.ValueType,
    rows: Callable[[pb.EmbedStreamResponse], Rows],
    batch_size: int,
    max_in_flight: int,
    options: dict[str, Any],
) -> StreamPlan[str, Rows]:
    refuse_string(texts, "texts takes an iterable of texts")
    built = build_options(**options)

    def request(number: int, batch: list[str]) -> pb.EmbedStreamRequest:
        return pb.EmbedStreamRequest(
            request_id=str(number),
            inputs=checked_texts(batch, number * batch_size),
            options=built,
            precision=precision,
        )

    def outputs(_: pb.EmbedStreamRequest, answer: pb.EmbedStreamResponse) -> Rows:
        return rows(answer)

    def failed(error: Exception) -> Exception:
        return renumbered_in_stream(error, batch_size)

    return StreamPlan(_EMBED_STREAM, texts, batch_size, max_in_flight, request, outputs, failed)


def embed_tokens(texts: str | Sequence[str], **options: Any) -> Plan[pb.EmbedTokensResponse]:
    """Per-token vectors with token strings and character offsets."""
    request = pb.EmbedTokensRequest(inputs=as_list(texts), options=build_options(**options))
    response: pb.EmbedTokensResponse = yield Unary("embedding", "EmbedTokens", request)
    return response


def tokenize(
    texts: str | Sequence[str], *, task: Any = None, prompt: str | None = None
) -> Plan[pb.TokenizeResponse]:
    """Token ids and strings as the model sees them (prompt included)."""
    request = pb.TokenizeRequest(inputs=as_list(texts), task=task_value(task))
    if prompt is not None:
        request.prompt = prompt
    response: pb.TokenizeResponse = yield Unary("embedding", "Tokenize", request)
    return response


def similarity(
    query: str | None = None,
    candidates: Sequence[str] | None = None,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    **options: Any,
) -> Plan[Vectors]:
    """Scores of ``query`` against ``candidates``, or of each of ``pairs``, by the model's
    similarity function (``model_info().similarity``; cosine for most models)."""
    if (pairs is None) == (query is None and candidates is None):
        raise ValueError("give a query and its candidates, or pairs (not both)")
    request = pb.SimilarityRequest(options=build_options(**options))
    if pairs is not None:
        request.pairs.pairs.extend(pb.TextPair(a=a, b=b) for a, b in pairs)
    else:
        request.query_candidates.query = query or ""
        candidates = listed(candidates or [], "candidates takes a list of texts")
        request.query_candidates.candidates.extend(candidates)
    response: pb.SimilarityResponse = yield Unary("embedding", "Similarity", request)
    return np.array(response.scores, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One document of a rerank: its position in the request, its score, and its text when
    asked for (``return_documents``)."""

    index: int
    score: float
    document: str | None = None


def rerank(
    query: str,
    documents: Sequence[str],
    *,
    top_n: int = 0,
    raw_scores: bool = False,
    return_documents: bool = False,
    overflow: OverflowName | None = None,
) -> Plan[list[Ranked]]:
    """``documents`` scored against ``query`` by the server's reranker, best first;
    ``top_n`` keeps the best N (0: all). ``overflow="chunk"`` reads a long document in
    windows and scores its best one; ``"error"`` refuses it instead of cutting it."""
    check_uint32("top_n", top_n)
    request = pb.RerankRequest(
        query=checked_text("query", query),
        documents=checked_texts(as_list(documents)),
        top_n=top_n,
        raw_scores=raw_scores,
        return_documents=return_documents,
        overflow=overflow_value(overflow),
    )
    response: pb.RerankResponse = yield Unary("embedding", "Rerank", request)
    return [
        Ranked(r.index, r.score, r.document if return_documents else None) for r in response.results
    ]


def model_info() -> Plan[pb.GetModelInfoResponse]:
    """What the server serves: model, dimensions, pooling, prompts, limits."""
    response: pb.GetModelInfoResponse = yield Unary(
        "embedding", "GetModelInfo", pb.GetModelInfoRequest()
    )
    return response


# A health check waits this long at most (less where the client's timeout is shorter): a
# server that does not answer one by then is not serving.
_HEALTH_S = 10.0


def health(service: str = "") -> Plan[str]:
    """'SERVING', 'NOT_SERVING', ... as the standard health service reports it; within 10 s,
    or the client's timeout where it is shorter (DEADLINE_EXCEEDED)."""
    return (yield from _health(service, _HEALTH_S))


def _health(service: str, timeout: float) -> Plan[str]:
    request = health_pb2.HealthCheckRequest(service=service)
    reply = yield Unary("health", "Check", request, timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


# What a server that is still starting (or not up yet) answers; any other error (a missing
# or refused key, say) will not go away by waiting.
_NOT_UP_YET = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def wait_until_serving(timeout: float = 300.0) -> Plan[None]:
    """Return once health reports SERVING (the model is loaded and warm); an error other
    than UNAVAILABLE or DEADLINE_EXCEEDED is raised at once, TimeoutError after ``timeout``
    seconds: each health check gets at most the time left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (yield from _health("", min(_HEALTH_S, _left(deadline)))) == "SERVING":
                return
        except grpc.RpcError as exc:
            if exc.code() not in _NOT_UP_YET:
                raise
        if time.monotonic() >= deadline:
            raise TimeoutError(f"server not SERVING after {timeout} s")
        yield Sleep(min(0.2, _left(deadline)))


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 1e-6)  # grpc takes no timeout of 0
