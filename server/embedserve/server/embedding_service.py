"""EmbeddingService: translates protobuf to core calls; the core does the work.

Requests over ``max_message_bytes`` never get here: the decode guard refuses them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from embedserve.server import convert, similarity
from embedserve.server.batcher import Priority
from embedserve.server.drain import Drain
from embedserve.server.embedder import Embedder
from embedserve.server.errors import InvalidArgument, NotReady, named
from embedserve.server.model_info import model_info
from embedserve.server.ordered import answers_in_order
from embedserve.server.reranking import Reranker, RerankParams, no_reranker
from embedserve.server.status import streaming, unary
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def deadline_of(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


@dataclasses.dataclass(frozen=True)
class EmbedStreamLimits:
    """The EmbedStream section of the settings."""

    stream_inflight: int = 32  # requests of one EmbedStream embedded at once; more wait


async def _numbered(
    requests: AsyncIterator[pb.EmbedStreamRequest],
) -> AsyncIterator[tuple[int, pb.EmbedStreamRequest]]:
    """An EmbedStream's requests with their places in the stream, from 1."""
    number = 0
    async for request in requests:
        number += 1
        yield number, request


class EmbeddingService(pb_grpc.EmbeddingServiceServicer):
    def __init__(self, stream_limits: EmbedStreamLimits, drain: Drain) -> None:
        self._attached: Embedder | None = None
        self._reranker: Reranker | None = None
        self.stream_limits = stream_limits
        self._drain = drain

    def attach(self, embedder: Embedder, reranker: Reranker | None = None) -> None:
        self._reranker = reranker
        self._attached = embedder

    @property
    def _embedder(self) -> Embedder:
        if self._attached is None:
            raise NotReady("the model is still loading; wait for health SERVING")
        return self._attached

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        params = convert.params_from_proto(request.options)
        precision = convert.precision_from_proto(request.precision)
        result = await self._embedder.embed(list(request.inputs), params, deadline_of(context))
        return pb.EmbedResponse(
            embeddings=convert.embeddings_to_proto(result, precision),
            usage=pb.Usage(total_tokens=result.total_tokens),
            timings=convert.timings_to_proto(result.timings),
            model=self._embedder.model.spec.model_id,
            dimensions=result.vectors.shape[1],
        )

    @streaming
    async def EmbedStream(
        self, request_iterator: AsyncIterator[pb.EmbedStreamRequest], context: Context
    ) -> AsyncIterator[pb.EmbedStreamResponse]:
        deadline = deadline_of(context)
        async for answer in answers_in_order(
            _numbered(request_iterator),
            lambda numbered: self._stream_one(*numbered, deadline),
            self.stream_limits.stream_inflight,
            self._drain,
        ):
            yield answer

    async def _stream_one(
        self, number: int, request: pb.EmbedStreamRequest, deadline: float | None
    ) -> pb.EmbedStreamResponse:
        # A request without a request_id was named "request_id ''": by its place instead.
        what = f"request_id {request.request_id!r}" if request.request_id else f"message {number}"
        with named(what):
            params = convert.params_from_proto(request.options)
            precision = convert.precision_from_proto(request.precision)
            result = await self._embedder.embed(
                list(request.inputs), params, deadline, wait_for_room=True, priority=Priority.BULK
            )
        return pb.EmbedStreamResponse(
            request_id=request.request_id,
            embeddings=convert.embeddings_to_proto(result, precision),
            usage=pb.Usage(total_tokens=result.total_tokens),
            timings=convert.timings_to_proto(result.timings),
            dimensions=result.vectors.shape[1],
        )

    @unary
    async def EmbedTokens(
        self, request: pb.EmbedTokensRequest, context: Context
    ) -> pb.EmbedTokensResponse:
        params = convert.params_from_proto(request.options)
        result = await self._embedder.embed_tokens(
            list(request.inputs), params, deadline_of(context)
        )
        items = []
        for detail, matrix, truncated in zip(
            result.details, result.vectors, result.truncated, strict=True
        ):
            tokens = [
                pb.TokenEmbedding(token=tok, token_id=tid, start=start, end=end, values=row)
                for tok, tid, (start, end), row in zip(
                    detail.tokens, detail.ids, detail.offsets, matrix.tolist(), strict=True
                )
            ]
            items.append(pb.TokenEmbeddings(tokens=tokens, truncated=truncated))
        total = sum(len(d.ids) for d in result.details)
        return pb.EmbedTokensResponse(
            results=items,
            usage=pb.Usage(total_tokens=total),
            timings=convert.timings_to_proto(result.timings),
            dimensions=result.vectors[0].shape[1],
        )

    @unary
    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        task = convert.task_from_proto(request.task, "task")
        prompt = request.prompt if request.HasField("prompt") else None
        details = await self._embedder.tokenize(list(request.inputs), task, prompt)
        limit = self._embedder.model.spec.max_tokens
        return pb.TokenizeResponse(
            results=[
                pb.Tokenization(
                    ids=d.ids,
                    tokens=d.tokens,
                    token_count=len(d.ids),
                    exceeds_max_tokens=len(d.ids) > limit,
                )
                for d in details
            ],
            usage=pb.Usage(total_tokens=sum(len(d.ids) for d in details)),
            max_tokens=limit,
        )

    @unary
    async def Similarity(
        self, request: pb.SimilarityRequest, context: Context
    ) -> pb.SimilarityResponse:
        params = convert.params_from_proto(request.options)
        deadline = deadline_of(context)
        which = request.WhichOneof("input")
        if which == "pairs":
            pairs = [(p.a, p.b) for p in request.pairs.pairs]
            scored = await similarity.score_pairs(self._embedder, pairs, params, deadline)
        elif which == "query_candidates":
            query = request.query_candidates
            scored = await similarity.score_candidates(
                self._embedder, query.query, list(query.candidates), params, deadline
            )
        else:
            raise InvalidArgument("one of pairs or query_candidates must be set")
        return pb.SimilarityResponse(
            scores=scored.scores.tolist(),
            usage=pb.Usage(total_tokens=scored.total_tokens),
            timings=convert.timings_to_proto(scored.timings),
        )

    @unary
    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: Context
    ) -> pb.GetModelInfoResponse:
        info = model_info(self._embedder, self._reranker)
        return pb.GetModelInfoResponse(
            model_id=info.model_id,
            dimensions=info.dimensions,
            max_tokens=info.max_tokens,
            pooling=convert.POOLING_TO_PROTO[info.pooling],
            normalize=info.normalize,
            prompts=info.prompts,
            default_prompt_name=info.default_prompt_name,
            dtype=info.dtype,
            device=info.device,
            backend=info.backend,
            model_type=info.model_type,
            similarity=info.similarity.value,
            model_revision=info.model_revision,
            fingerprint=info.fingerprint,
            former_fingerprint=info.former_fingerprint,
            former_fingerprints=info.former_fingerprints,
            batching=pb.BatchingLimits(
                max_batch_tokens=info.batching.max_batch_tokens,
                max_batch_size=info.batching.max_batch_size,
                max_wait_ms=info.batching.max_wait_ms,
                max_queue_items=info.batching.max_queue_items,
            ),
            limits=pb.RequestLimits(
                max_inputs_per_request=info.limits.max_inputs_per_request,
                max_input_chars=info.limits.max_input_chars,
                max_message_bytes=info.limits.max_message_bytes,
            ),
            reranker=None
            if info.reranker is None
            else pb.RerankerInfo(
                model_id=info.reranker.model_id,
                max_tokens=info.reranker.max_tokens,
                model_type=info.reranker.model_type,
                activation=info.reranker.activation,
            ),
        )

    @unary
    async def Rerank(self, request: pb.RerankRequest, context: Context) -> pb.RerankResponse:
        if self._attached is None:  # the reranker is attached with the model, once warm
            raise NotReady("the model is still loading; wait for health SERVING")
        if self._reranker is None:
            raise no_reranker()
        params = RerankParams(
            top_n=request.top_n,
            raw_scores=request.raw_scores,
            overflow=convert.enum_value(convert.OVERFLOWS, request.overflow, "overflow"),
        )
        documents = list(request.documents)
        result = await self._reranker.rerank(request.query, documents, params, deadline_of(context))
        return pb.RerankResponse(
            results=[
                pb.RerankResult(
                    index=doc.index,
                    score=doc.score,
                    document=documents[doc.index] if request.return_documents else "",
                    token_count=doc.token_count,
                    truncated=doc.truncated,
                )
                for doc in result.ranked
            ],
            usage=pb.Usage(total_tokens=result.total_tokens),
            timings=convert.timings_to_proto(result.timings),
            model=self._reranker.model.spec.reranker_id,
        )
