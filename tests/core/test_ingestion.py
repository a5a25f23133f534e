"""Ingestion over the fake encoder and the embedded engine: order, acknowledgements, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeEncoder
from harness import limits, running_embedder

from embedserve.connectors import CollectionSpec, EdgeStore, PointRecord, TransientStoreError
from embedserve.server.config import Settings
from embedserve.server.drain import Drain, ServerDraining
from embedserve.server.errors import EmbedServeError, InvalidArgument, StoreDown
from embedserve.server.ingestion import Ack, IngestMessage, IngestPipeline, IngestSettings
from embedserve.server.metrics import Metrics
from embedserve.server.vectors import DocumentIn, PreparedBatch, VectorCore, WriteSettings

DIMENSIONS = 16


def message(batch: int, documents: Sequence[DocumentIn], collection: str = "docs") -> IngestMessage:
    return IngestMessage(f"b{batch}", collection, documents, WriteSettings())


def vectors(batch: int, count: int) -> list[DocumentIn]:
    return [DocumentIn(f"{batch}-{i}", vector=[float(i + 1)] * DIMENSIONS) for i in range(count)]


def texts(batch: int, count: int = 3) -> list[DocumentIn]:
    return [DocumentIn(f"{batch}-{i}", text=f"text {batch} {i} words") for i in range(count)]


class RecordingStore(EdgeStore):
    """The embedded engine, recording how many points each write holds. From ``down_after``
    writes on, its upserts fail as a store outage would: that fault cannot be caused for real
    in-process, and it is the one fake here."""

    def __init__(self, path: Path, down_after: int | None = None) -> None:
        super().__init__(path)
        self.writes: list[int] = []
        self.down_after = down_after

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        if self.down_after is not None and len(self.writes) >= self.down_after:
            raise TransientStoreError("connection refused (injected)")
        super().upsert(collection, points)
        self.writes.append(len(points))


class AllReadyCore(VectorCore):
    """Holds the first message's preparation until every later one is prepared, so the
    writer finds them all ready at once and the way it joins them is certain."""

    def __init__(self, *args: Any, messages: int) -> None:
        super().__init__(*args)
        self._calls = 0
        self._left = messages - 1
        self._rest_prepared = asyncio.Event()

    async def prepare(self, *args: Any, **kwargs: Any) -> PreparedBatch:
        first = self._calls == 0
        self._calls += 1
        prepared = await super().prepare(*args, **kwargs)
        if first:
            await self._rest_prepared.wait()
        else:
            self._left -= 1
            if self._left == 0:
                self._rest_prepared.set()
        return prepared


@dataclasses.dataclass
class Outcome:
    acks: list[Ack]
    error: EmbedServeError | None
    stored: int
    writes: list[int]


async def ingest_stream(
    tmp_path: Path,
    encoder: FakeEncoder,
    source: AsyncIterator[IngestMessage],
    *,
    down_after: int | None = None,
    all_ready: int = 0,
    queue_items: int = 10_000,
    on_ack: Callable[[Ack], None] | None = None,
    settings: IngestSettings | None = None,
    drain: Drain | None = None,
    core_type: type[VectorCore] = VectorCore,
) -> Outcome:
    """Run one stream; return its acks, the error that ended it (if any), the stored count
    and the size of each store write."""
    store = RecordingStore(tmp_path / "data", down_after)
    store.create_collection(CollectionSpec("docs", DIMENSIONS))
    executor = ThreadPoolExecutor(2)
    outcome = Outcome([], None, 0, store.writes)
    async with running_embedder(encoder, limits(max_queue_items=queue_items)) as embedder:
        parts = (store, embedder, executor, Metrics())
        core = AllReadyCore(*parts, messages=all_ready) if all_ready else core_type(*parts)
        try:
            pipeline = IngestPipeline(core, settings or IngestSettings(), drain)
            async for ack in pipeline.run(source):
                outcome.acks.append(ack)
                # Acknowledged means written (ready messages share one write, so maybe more).
                assert store.count("docs") >= ack.total_acknowledged
                if on_ack:
                    on_ack(ack)
        except EmbedServeError as exc:
            outcome.error = exc
    outcome.stored = store.count("docs")
    store.close()
    executor.shutdown()
    return outcome


async def listed(messages: list[IngestMessage]) -> AsyncIterator[IngestMessage]:
    for item in messages:
        yield item


async def ingest(
    tmp_path: Path,
    encoder: FakeEncoder,
    messages: list[IngestMessage],
    settings: IngestSettings | None = None,
    core_type: type[VectorCore] = VectorCore,
) -> tuple[list[Ack], BaseException | None, int]:
    outcome = await ingest_stream(
        tmp_path, encoder, listed(messages), settings=settings, core_type=core_type
    )
    return outcome.acks, outcome.error, outcome.stored


def test_acks_come_in_message_order_with_running_totals(tmp_path) -> None:
    # Message 1 carries ready vectors and is prepared at once; it must still wait for 0.
    vectors = [DocumentIn(f"v{i}", vector=[float(i + 1)] * DIMENSIONS) for i in range(2)]
    messages = [message(0, texts(0)), message(1, vectors), message(2, texts(2))]
    acks, error, stored = asyncio.run(ingest(tmp_path, FakeEncoder(), messages))
    assert error is None
    assert [a.batch_id for a in acks] == ["b0", "b1", "b2"]
    assert [a.total_acknowledged for a in acks] == [3, 5, 8]
    assert acks[1].ids == ["v0", "v1"] and acks[1].tokens == 0
    assert stored == 8


@pytest.mark.parametrize(
    ("bad", "message_text"),
    [
        (DocumentIn("x", text="fine", payload={"_embedserve_id": "y"}), "reserved"),
        (DocumentIn("x", text="fine", payload={"score": math.nan}), "finite"),
        (DocumentIn("x", vector=[1.0] * (DIMENSIONS + 1)), "17 dimensions"),
        (DocumentIn("", text="fine"), "id must not be empty"),
        (DocumentIn("x", text="fine", payload={"when": object()}), "unsupported payload type"),
    ],
)
def test_a_bad_document_is_refused_before_any_model_call(
    tmp_path, bad: DocumentIn, message_text: str
) -> None:
    encoder = FakeEncoder()
    messages = [message(0, [*texts(0), bad])]
    acks, error, stored = asyncio.run(ingest(tmp_path, encoder, messages))
    assert isinstance(error, InvalidArgument)
    assert "documents[3]" in str(error) and message_text in str(error)
    assert encoder.calls == 0  # nothing of the bad message was embedded
    assert acks == [] and stored == 0


def test_good_messages_before_a_bad_one_are_acknowledged(tmp_path) -> None:
    bad = DocumentIn("x", text="fine", payload={"_embedserve_id": "y"})
    messages = [message(0, texts(0)), message(1, texts(1)), message(2, [bad])]
    acks, error, stored = asyncio.run(
        ingest(tmp_path, FakeEncoder(), messages, IngestSettings(ingest_inflight=1))
    )
    assert isinstance(error, InvalidArgument)
    assert [a.batch_id for a in acks] == ["b0", "b1"]
    assert stored == 6


@pytest.mark.parametrize(("env", "bound"), [({}, 6), ({"EMBEDSERVE_INGEST_INFLIGHT": "2"}, 2)])
def test_ingest_inflight_bounds_the_messages_being_embedded(
    tmp_path, env: dict[str, str], bound: int
) -> None:
    class PeakCountingCore(VectorCore):
        """The real core, counting the messages being prepared at once."""

        active = peak = 0

        async def prepare(self, *args: Any, **kwargs: Any) -> Any:
            kind = type(self)
            kind.active += 1
            kind.peak = max(kind.peak, kind.active)
            try:
                await asyncio.sleep(0.01)  # the stream reads on and starts what its bound allows
                return await super().prepare(*args, **kwargs)
            finally:
                kind.active -= 1

    settings = Settings.from_sources(env=env).section(IngestSettings)
    messages = [message(i, texts(i)) for i in range(6)]  # fewer than the default of 16
    acks, error, stored = asyncio.run(
        ingest(tmp_path, FakeEncoder(), messages, settings, PeakCountingCore)
    )
    assert error is None and len(acks) == 6 and stored == 18
    assert PeakCountingCore.peak == bound


def test_ready_messages_share_writes_of_at_most_max_write_points(tmp_path) -> None:
    messages = [message(i, vectors(i, 3)) for i in range(5)]
    outcome = asyncio.run(
        ingest_stream(
            tmp_path,
            FakeEncoder(),
            listed(messages),
            all_ready=5,
            settings=IngestSettings(max_write_points=6),
        )
    )
    assert outcome.writes == [6, 6, 3]  # the first message's points count too
    assert [a.total_acknowledged for a in outcome.acks] == [3, 6, 9, 12, 15]
    whole = asyncio.run(
        ingest_stream(tmp_path / "all", FakeEncoder(), listed(messages), all_ready=5)
    )
    assert whole.writes == [15]


def test_a_message_over_max_write_points_is_written_alone(tmp_path) -> None:
    messages = [message(0, vectors(0, 5)), message(1, vectors(1, 1))]
    outcome = asyncio.run(
        ingest_stream(
            tmp_path,
            FakeEncoder(),
            listed(messages),
            all_ready=2,
            settings=IngestSettings(max_write_points=4),
        )
    )
    assert outcome.writes == [5, 1] and outcome.stored == 6


def test_later_messages_may_leave_the_collection_out(tmp_path) -> None:
    messages = [message(0, texts(0)), message(1, texts(1), collection="")]
    acks, error, stored = asyncio.run(ingest(tmp_path, FakeEncoder(), messages))
    assert error is None and [a.batch_id for a in acks] == ["b0", "b1"] and stored == 6


def test_the_first_message_must_name_the_collection(tmp_path) -> None:
    acks, error, stored = asyncio.run(
        ingest(tmp_path, FakeEncoder(), [message(0, texts(0), collection="")])
    )
    assert isinstance(error, InvalidArgument)
    assert error.message == "batch_id 'b0': collection must be set on the first message"
    assert acks == [] and stored == 0


def test_one_stream_writes_one_collection(tmp_path) -> None:
    messages = [message(0, texts(0)), message(1, texts(1), collection="other")]
    acks, error, stored = asyncio.run(ingest(tmp_path, FakeEncoder(), messages))
    assert isinstance(error, InvalidArgument)
    assert error.message == "batch_id 'b1': one stream writes one collection ('docs'), got 'other'"
    assert [a.batch_id for a in acks] == ["b0"] and stored == 3


def test_a_store_that_goes_down_ends_the_stream_naming_the_last_ack(tmp_path) -> None:
    messages = [message(0, texts(0)), message(1, texts(1))]
    outcome = asyncio.run(
        ingest_stream(
            tmp_path,
            FakeEncoder(),
            listed(messages),
            down_after=1,
            settings=IngestSettings(ingest_inflight=1),
        )
    )
    assert isinstance(outcome.error, StoreDown)
    assert outcome.error.message == (
        "connection refused (injected); "
        "last acknowledged document: '0-2' (3 acknowledged on this stream)"
    )
    assert [a.batch_id for a in outcome.acks] == ["b0"] and outcome.stored == 3


def test_a_drain_ends_the_stream_naming_the_last_ack(tmp_path) -> None:
    drain = Drain()

    async def source() -> AsyncIterator[IngestMessage]:
        yield message(0, texts(0))
        await asyncio.Event().wait()  # the producer has more, but the drain comes first

    outcome = asyncio.run(
        ingest_stream(
            tmp_path, FakeEncoder(), source(), drain=drain, on_ack=lambda _: drain.start()
        )
    )
    assert isinstance(outcome.error, ServerDraining)
    assert outcome.error.message == (
        "the server is shutting down; "
        "last acknowledged document: '0-2' (3 acknowledged on this stream)"
    )


def test_a_drain_before_any_ack_says_nothing_was_acknowledged(tmp_path) -> None:
    drain = Drain()
    drain.start()
    outcome = asyncio.run(
        ingest_stream(tmp_path, FakeEncoder(), listed([message(0, texts(0))]), drain=drain)
    )
    assert isinstance(outcome.error, ServerDraining)
    assert outcome.error.message.endswith("; no document was acknowledged on this stream")


def test_stream_messages_wait_for_queue_room_instead_of_failing(tmp_path) -> None:
    # Three texts in one message, a queue of two: a unary call would be refused.
    outcome = asyncio.run(
        ingest_stream(tmp_path, FakeEncoder(), listed([message(0, texts(0))]), queue_items=2)
    )
    assert outcome.error is None and outcome.stored == 3
