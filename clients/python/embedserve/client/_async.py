"""asyncio client on grpc.aio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedserve.client._balancing import balancing_options, channel_target
from embedserve.client._options import Vectors, as_list, batches, build_options, vectors_of
from embedserve.client._sync import CHANNEL_OPTIONS, DEFAULT_TARGET
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc


class AsyncEmbedClient:
    """The asyncio twin of :class:`EmbedClient`; failed calls raise ``grpc.aio.AioRpcError``."""

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
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        self._stub = pb_grpc.EmbeddingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None

    async def __aenter__(self) -> AsyncEmbedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def embed(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 256,
        max_in_flight: int = 4,
        **options: Any,
    ) -> Vectors:
        """Embed texts; rows of the result are in input order."""
        built = build_options(**options)
        slots = asyncio.Semaphore(max_in_flight)

        async def one(chunk: list[str]) -> Vectors:
            async with slots:
                response: pb.EmbedResponse = await self._stub.Embed(
                    pb.EmbedRequest(inputs=chunk, options=built),
                    timeout=self._timeout,
                    metadata=self._metadata,
                )
            return vectors_of(response.embeddings, response.dimensions)

        parts = await asyncio.gather(*(one(c) for c in batches(as_list(texts), batch_size)))
        if not parts:
            raise ValueError("texts must not be empty")
        return np.concatenate(parts)

    async def embed_iter(
        self,
        texts: Iterable[str] | AsyncIterable[str],
        *,
        batch_size: int = 32,
        max_in_flight: int = 8,
        **options: Any,
    ) -> AsyncIterator[Vectors]:
        """Stream texts through EmbedStream; yields one vector per text, in order."""
        built = build_options(**options)
        slots = asyncio.Semaphore(max_in_flight)

        async def texts_async() -> AsyncIterator[str]:
            if isinstance(texts, AsyncIterable):
                async for text in texts:
                    yield text
            else:
                for text in texts:
                    yield text

        async def requests() -> AsyncIterator[pb.EmbedStreamRequest]:
            batch: list[str] = []
            index = 0
            async for text in texts_async():
                batch.append(text)
                if len(batch) == batch_size:
                    await slots.acquire()
                    yield pb.EmbedStreamRequest(request_id=str(index), inputs=batch, options=built)
                    batch, index = [], index + 1
            if batch:
                await slots.acquire()
                yield pb.EmbedStreamRequest(request_id=str(index), inputs=batch, options=built)

        call = self._stub.EmbedStream(requests(), metadata=self._metadata)
        try:
            expected = 0
            async for response in call:
                if response.request_id != str(expected):
                    raise RuntimeError(
                        f"stream out of order: got {response.request_id!r}, expected {expected}"
                    )
                expected += 1
                slots.release()
                for vector in vectors_of(response.embeddings, response.dimensions):
                    yield vector
        finally:
            call.cancel()

    async def model_info(self) -> pb.GetModelInfoResponse:
        response: pb.GetModelInfoResponse = await self._stub.GetModelInfo(
            pb.GetModelInfoRequest(), timeout=self._timeout, metadata=self._metadata
        )
        return response

    async def health(self, service: str = "") -> str:
        reply = await self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10, metadata=self._metadata
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
