"""Streaming ingestion: embedding and store writes overlap; acks only after durable writes.

Per stream, up to ``ingest_inflight`` messages are embedded at once (later ones wait:
backpressure reaches the producer because the stream stops reading). A single writer
takes the embedded messages in order, joins those already ready into one store write
(up to ``max_write_points``), and acknowledges each only after that write returned.
If the store stays down or its disk is full, the stream fails naming the last acknowledged
document; so does a server that drains for shutdown, after writing and acknowledging what
it had accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

from embedserve.server.drain import Drain
from embedserve.server.errors import (
    EmbedServeError,
    InvalidArgument,
    OutOfSpace,
    StoreDown,
    StoreFailed,
)
from embedserve.server.ordered import OrderedStream, Started
from embedserve.server.vectors import (
    DocumentIn,
    PreparedBatch,
    SizeChanged,
    VectorCore,
    WriteSettings,
)


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """The ingestion section of the settings, for both transports' ingestion streams."""

    ingest_inflight: int = 16  # messages of one ingestion stream being embedded at once
    max_write_points: int = 1024  # points joined into one store write


@dataclasses.dataclass(frozen=True)
class IngestMessage:
    batch_id: str
    collection: str
    documents: Sequence[DocumentIn]
    settings: WriteSettings
    number: int = 0  # its place in the stream, from 1
    counted_in: str = "message"  # what ``number`` counts: gRPC messages, HTTP body lines

    @property
    def name(self) -> str:
        return message_name(self.batch_id, self.number, self.counted_in)


def message_name(batch_id: str, number: int, counted_in: str = "message") -> str:
    """How errors name a message: by its batch_id, else by its place in the stream
    ("message 2"; over HTTP, "line 2": the body's line number, as a bad line's errors say)."""
    return f"batch_id {batch_id!r}" if batch_id else f"{counted_in} {number}"


@dataclasses.dataclass(frozen=True)
class Ack:
    batch_id: str
    ids: list[str]
    total_acknowledged: int
    tokens: int


_Started = Started[IngestMessage, PreparedBatch]
_Stream = OrderedStream[IngestMessage, PreparedBatch]


class IngestPipeline:
    def __init__(self, core: VectorCore, settings: IngestSettings, drain: Drain | None = None):
        self._core = core
        self._drain = drain or Drain()
        self.settings = settings
        self.acknowledged = 0
        self.last_id = ""

    async def run(self, messages: AsyncIterator[IngestMessage]) -> AsyncIterator[Ack]:
        async with OrderedStream(
            self._with_collection(messages),
            self._prepare,
            self.settings.ingest_inflight,
            self._drain,
        ) as stream:
            while (first := await stream.next()) is not None:
                group = [first, *self._ready_followers(stream, len(first.result.points))]
                async for ack in self._write_group(group):
                    stream.release()
                    yield ack
            await stream.finish(self._progress)

    async def _with_collection(
        self, messages: AsyncIterator[IngestMessage]
    ) -> AsyncIterator[IngestMessage]:
        """Messages with the stream's collection filled in (a bad one ends the reading)."""
        collection = ""
        async for message in messages:
            collection = self._collection_of(message, collection)
            yield dataclasses.replace(message, collection=collection)

    async def _prepare(self, message: IngestMessage) -> PreparedBatch:
        try:
            return await self._core.prepare(
                message.collection, message.documents, message.settings, wait_for_room=True
            )
        except EmbedServeError as exc:  # "documents[3].text is empty": of which batch
            exc.message = f"{message.name}: {exc.message}"
            raise

    def _progress(self) -> str:
        if not self.acknowledged:
            return "no document was acknowledged on this stream"
        return (
            f"last acknowledged document: {self.last_id!r} "
            f"({self.acknowledged} acknowledged on this stream)"
        )

    @staticmethod
    def _collection_of(message: IngestMessage, current: str) -> str:
        if not message.collection:
            if not current:
                raise InvalidArgument(
                    f"{message.name}: collection must be set on the first message"
                )
            return current
        if current and message.collection != current:
            raise InvalidArgument(
                f"{message.name}: one stream writes one collection "
                f"({current!r}), got {message.collection!r}"
            )
        return message.collection

    def _ready_followers(self, stream: _Stream, size: int) -> list[_Started]:
        """Messages right behind the first whose embedding is done, written together while
        the write stays within ``max_write_points`` (``size``: the first message's points)."""
        followers: list[_Started] = []

        def fits(started: _Started) -> bool:
            return size + len(started.result.points) <= self.settings.max_write_points

        while (follower := stream.next_ready(fits)) is not None:
            size += len(follower.result.points)
            followers.append(follower)
        return followers

    async def _write_group(self, group: list[_Started]) -> AsyncIterator[Ack]:
        batches = [started.result for started in group]
        collection = group[0].message.collection
        try:
            try:
                await self._core.write(collection, batches)
            except SizeChanged:  # another server re-made the collection: embed at its size
                batches = [await self._prepare(started.message) for started in group]
                await self._core.write(collection, batches)
        except (StoreDown, StoreFailed, OutOfSpace) as exc:
            exc.message = f"{exc.message}; {self._progress()}"
            raise
        metrics = self._core.metrics
        for started, batch in zip(group, batches, strict=True):
            message = started.message
            ids = [doc.id for doc in message.documents]
            self.acknowledged += len(ids)
            self.last_id = ids[-1]
            metrics.ingest_documents.inc(len(ids))
            metrics.ingest_acks.inc()
            yield Ack(message.batch_id, ids, self.acknowledged, batch.tokens)
