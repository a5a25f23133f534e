"""Streaming ingestion: embedding and store writes overlap; acks only after durable writes.

Per stream, up to ``max_inflight`` messages are embedded at once (later ones wait:
backpressure reaches the producer because the stream stops reading). A single writer
takes the embedded messages in order, joins those already ready into one store write
(up to ``max_write_points``), and acknowledges each only after that write returned.
If the store stays down, the stream fails naming the last acknowledged document; so does
a server that drains for shutdown, after writing and acknowledging what it had accepted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Sequence

from embedserve.server.drain import Drain, ServerDraining
from embedserve.server.errors import EmbedServeError, InvalidArgument, StoreDown
from embedserve.server.tasks import discard
from embedserve.server.vectors import DocumentIn, PreparedBatch, VectorCore, WriteSettings


@dataclasses.dataclass(frozen=True)
class IngestMessage:
    batch_id: str
    collection: str
    documents: Sequence[DocumentIn]
    settings: WriteSettings


@dataclasses.dataclass(frozen=True)
class Ack:
    batch_id: str
    ids: list[str]
    total_acknowledged: int
    tokens: int


_Pending = tuple[IngestMessage, "asyncio.Task[PreparedBatch]"]


class IngestPipeline:
    def __init__(
        self,
        core: VectorCore,
        max_inflight: int = 16,
        max_write_points: int = 1024,
        drain: Drain | None = None,
    ):
        self._core = core
        self._drain = drain or Drain()
        self._max_inflight = max_inflight
        self._max_write_points = max_write_points
        self.acknowledged = 0
        self.last_id = ""

    async def run(self, messages: AsyncIterator[IngestMessage]) -> AsyncIterator[Ack]:
        slots = asyncio.Semaphore(self._max_inflight)
        pending: collections.deque[_Pending] = collections.deque()
        arrived = asyncio.Event()
        reading = True

        async def read() -> None:
            nonlocal reading
            collection = ""
            try:
                async for message in self._drain.messages(messages):
                    collection = self._collection_of(message, collection)
                    message = dataclasses.replace(message, collection=collection)
                    await slots.acquire()
                    prepare = self._core.prepare(
                        collection, message.documents, message.settings, wait_for_room=True
                    )
                    pending.append((message, asyncio.ensure_future(prepare)))
                    arrived.set()
            finally:
                reading = False
                arrived.set()

        reader = asyncio.ensure_future(read())
        try:
            while True:
                while not pending and reading:
                    arrived.clear()
                    await arrived.wait()
                if not pending:
                    break
                group = [pending.popleft()]
                await group[0][1]
                group += self._ready_followers(pending)
                async for ack in self._write_group(group):
                    slots.release()
                    yield ack
            try:
                await reader  # surfaces a reader error (a bad message) after the good ones
            except ServerDraining as exc:
                exc.message += f"; {self._progress()}"
                raise
        finally:
            discard(reader)
            for _, task in pending:
                discard(task)

    def _progress(self) -> str:
        return (
            f"last acknowledged document: {self.last_id!r} "
            f"({self.acknowledged} acknowledged on this stream)"
        )

    @staticmethod
    def _collection_of(message: IngestMessage, current: str) -> str:
        if not message.collection:
            if not current:
                raise InvalidArgument(
                    f"batch_id {message.batch_id!r}: collection must be set on the first message"
                )
            return current
        if current and message.collection != current:
            raise InvalidArgument(
                f"batch_id {message.batch_id!r}: one stream writes one collection "
                f"({current!r}), got {message.collection!r}"
            )
        return message.collection

    def _ready_followers(self, pending: collections.deque[_Pending]) -> list[_Pending]:
        """Messages right behind the first whose embedding is done: written together."""
        followers: list[_Pending] = []
        size = 0
        while pending:
            task = pending[0][1]
            if not task.done() or task.cancelled() or task.exception() is not None:
                break
            size += len(task.result().points)
            if followers and size > self._max_write_points:
                break
            followers.append(pending.popleft())
        return followers

    async def _write_group(self, group: list[_Pending]) -> AsyncIterator[Ack]:
        points = [point for _, task in group for point in task.result().points]
        collection = group[0][0].collection
        try:
            await self._core.write(collection, points)
        except StoreDown as exc:
            raise StoreDown(f"{exc.message}; {self._progress()}") from exc
        except EmbedServeError:
            raise
        metrics = self._core.metrics
        for message, task in group:
            ids = [doc.id for doc in message.documents]
            self.acknowledged += len(ids)
            self.last_id = ids[-1]
            metrics.ingest_documents.inc(len(ids))
            metrics.ingest_acks.inc()
            yield Ack(message.batch_id, ids, self.acknowledged, task.result().tokens)
