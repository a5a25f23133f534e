"""Protobuf messages to core parameters and back. Unknown enum values are the caller's mistake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from embedserve.server.batcher import Priority
from embedserve.server.embedder import EmbedParams, EmbedResult, Task, Timings
from embedserve.server.errors import InvalidArgument
from embedserve.server.model_spec import PoolingMode
from embedserve.server.precision import Precision
from embedserve.server.tokenization import Overflow
from embedserve.v1 import embedding_pb2 as pb

K = TypeVar("K")

TASKS: dict[pb.Task.ValueType, Task] = {
    pb.TASK_UNSPECIFIED: Task.DEFAULT,
    pb.TASK_QUERY: Task.QUERY,
    pb.TASK_DOCUMENT: Task.DOCUMENT,
    pb.TASK_NONE: Task.NONE,
}
POOLINGS: dict[pb.Pooling.ValueType, PoolingMode | None] = {
    pb.POOLING_UNSPECIFIED: None,
    pb.POOLING_MEAN: PoolingMode.MEAN,
    pb.POOLING_CLS: PoolingMode.CLS,
    pb.POOLING_LAST_TOKEN: PoolingMode.LAST_TOKEN,
}
POOLING_TO_PROTO = {mode: value for value, mode in POOLINGS.items() if mode is not None}
OVERFLOWS: dict[pb.OverflowPolicy.ValueType, Overflow] = {
    pb.OVERFLOW_POLICY_UNSPECIFIED: Overflow.TRUNCATE_RIGHT,
    pb.OVERFLOW_POLICY_TRUNCATE_RIGHT: Overflow.TRUNCATE_RIGHT,
    pb.OVERFLOW_POLICY_TRUNCATE_LEFT: Overflow.TRUNCATE_LEFT,
    pb.OVERFLOW_POLICY_ERROR: Overflow.ERROR,
    pb.OVERFLOW_POLICY_CHUNK: Overflow.CHUNK,
}

PRIORITIES: dict[pb.Priority.ValueType, Priority | None] = {
    pb.PRIORITY_UNSPECIFIED: None,
    pb.PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    pb.PRIORITY_BULK: Priority.BULK,
}

PRECISIONS: dict[pb.Precision.ValueType, Precision] = {
    pb.PRECISION_UNSPECIFIED: Precision.FLOAT32,
    pb.PRECISION_FLOAT32: Precision.FLOAT32,
    pb.PRECISION_INT8: Precision.INT8,
    pb.PRECISION_UINT8: Precision.UINT8,
    pb.PRECISION_BINARY: Precision.BINARY,
    pb.PRECISION_UBINARY: Precision.UBINARY,
}


def enum_value(table: Mapping[Any, K], value: int, field: str) -> K:
    if value not in table:
        raise InvalidArgument(f"{field} has the unknown value {value}")
    return table[value]


def task_from_proto(value: int, field: str) -> Task:
    return enum_value(TASKS, value, field)


def params_from_proto(options: pb.EmbedOptions, field: str = "options") -> EmbedParams:
    return EmbedParams(
        task=task_from_proto(options.task, f"{field}.task"),
        prompt=options.prompt if options.HasField("prompt") else None,
        dimensions=options.dimensions if options.HasField("dimensions") else None,
        pooling=enum_value(POOLINGS, options.pooling, f"{field}.pooling"),
        normalize=options.normalize if options.HasField("normalize") else None,
        overflow=enum_value(OVERFLOWS, options.overflow, f"{field}.overflow"),
        priority=enum_value(PRIORITIES, options.priority, f"{field}.priority"),
    )


def timings_to_proto(timings: Timings) -> pb.Timings:
    return pb.Timings(
        queue_ms=timings.queue_ms,
        tokenize_ms=timings.tokenize_ms,
        inference_ms=timings.inference_ms,
        total_ms=timings.total_ms,
    )


def precision_from_proto(value: int) -> Precision:
    return enum_value(PRECISIONS, value, "precision")


def embeddings_to_proto(
    result: EmbedResult, precision: Precision = Precision.FLOAT32
) -> list[pb.Embedding]:
    if precision is Precision.FLOAT32:
        return [
            pb.Embedding(values=vector, token_count=tokens, truncated=cut, chunk_count=chunks)
            for vector, tokens, cut, chunks in result.rows()
        ]
    rows = result.vectors_in(precision)
    return [
        pb.Embedding(quantized=row.tobytes(), token_count=tokens, truncated=cut, chunk_count=chunks)
        for row, tokens, cut, chunks in zip(
            rows, result.token_counts, result.truncated, result.chunk_counts, strict=True
        )
    ]
