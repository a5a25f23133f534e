"""The fast core layer's harness: a batcher and an embedder around the fake encoder."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fakes import FakeEncoder

from embedserve.server.batch_cost import PassCost
from embedserve.server.batcher import Batcher, BatchLimits
from embedserve.server.embedder import Embedder, RequestLimits
from embedserve.server.metrics import Metrics

TOKENIZE_THREADS = "tokenize"
MODEL_THREADS = "model"


def exactly(message: str) -> str:
    """A pattern for pytest.raises that takes the whole message, not a part of it."""
    return f"^{re.escape(message)}$"


def limits(**overrides: Any) -> BatchLimits:
    values: dict[str, Any] = {
        "max_batch_tokens": 2048,
        "max_batch_size": 256,
        "max_wait_ms": 2.0,
        "max_queue_items": 10_000,
        "sort_window": 2048,
        "max_padding_share": 0.10,
    }
    return BatchLimits(**(values | overrides))


@asynccontextmanager
async def running_batcher(
    compute: Callable[..., Any], batch_limits: BatchLimits, cost: PassCost | None = None
) -> AsyncIterator[tuple[Batcher, Metrics]]:
    executor = ThreadPoolExecutor(1, thread_name_prefix=MODEL_THREADS)
    metrics = Metrics()
    batcher = Batcher(compute, batch_limits, executor, metrics, cost)
    batcher.start()
    try:
        yield batcher, metrics
    finally:
        await batcher.stop()
        executor.shutdown()


@asynccontextmanager
async def running_embedder(
    encoder: FakeEncoder, batch_limits: BatchLimits | None = None, **request_limits: Any
) -> AsyncIterator[Embedder]:
    tokenize = ThreadPoolExecutor(1, thread_name_prefix=TOKENIZE_THREADS)
    async with running_batcher(encoder.compute, batch_limits or limits()) as (batcher, _):
        values = {"max_inputs_per_request": 64, "max_input_chars": 10_000}
        values |= request_limits
        values.setdefault("max_message_bytes", 1 << 20)
        yield Embedder(encoder, batcher, tokenize, RequestLimits(**values))
    tokenize.shutdown()
