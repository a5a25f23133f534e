"""Ingestion over the fake encoder and the embedded engine: order, acknowledgements, bad input."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeEncoder
from harness import running_embedder

from embedserve.connectors import CollectionSpec, EdgeStore
from embedserve.server.config import Settings
from embedserve.server.errors import InvalidArgument
from embedserve.server.ingestion import Ack, IngestMessage, IngestPipeline, IngestSettings
from embedserve.server.metrics import Metrics
from embedserve.server.vectors import DocumentIn, VectorCore, WriteSettings

DIMENSIONS = 16


def message(batch: int, documents: Sequence[DocumentIn]) -> IngestMessage:
    return IngestMessage(f"b{batch}", "docs", documents, WriteSettings())


def texts(batch: int, count: int = 3) -> list[DocumentIn]:
    return [DocumentIn(f"{batch}-{i}", text=f"text {batch} {i} words") for i in range(count)]


async def ingest(
    tmp_path: Path,
    encoder: FakeEncoder,
    messages: list[IngestMessage],
    settings: IngestSettings | None = None,
    core_type: type[VectorCore] = VectorCore,
) -> tuple[list[Ack], BaseException | None, int]:
    """Run one stream; return its acks, the error that ended it (if any) and the stored count."""
    store = EdgeStore(tmp_path / "data")
    store.create_collection(CollectionSpec("docs", DIMENSIONS))
    executor = ThreadPoolExecutor(2)

    async def source() -> AsyncIterator[IngestMessage]:
        for item in messages:
            yield item

    acks: list[Ack] = []
    error: BaseException | None = None
    async with running_embedder(encoder) as embedder:
        core = core_type(store, embedder, executor, Metrics())
        try:
            async for ack in IngestPipeline(core, settings or IngestSettings()).run(source()):
                acks.append(ack)
                # Acknowledged means written (ready messages share one write, so maybe more).
                assert store.count("docs") >= ack.total_acknowledged
        except InvalidArgument as exc:
            error = exc
    stored = store.count("docs")
    store.close()
    executor.shutdown()
    return acks, error, stored


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
