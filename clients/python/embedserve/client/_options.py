"""Request building and response decoding shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from embedserve.v1 import embedding_pb2 as pb

TaskName = Literal["query", "document", "none"]
PoolingName = Literal["mean", "cls", "last_token"]
OverflowName = Literal["truncate_right", "truncate_left", "error", "chunk"]
Vectors = npt.NDArray[np.float32]

V = TypeVar("V", bound=int)
T = TypeVar("T")

_TASKS: dict[str, pb.Task.ValueType] = {
    "query": pb.TASK_QUERY,
    "document": pb.TASK_DOCUMENT,
    "none": pb.TASK_NONE,
}
_POOLINGS: dict[str, pb.Pooling.ValueType] = {
    "mean": pb.POOLING_MEAN,
    "cls": pb.POOLING_CLS,
    "last_token": pb.POOLING_LAST_TOKEN,
}
_OVERFLOWS: dict[str, pb.OverflowPolicy.ValueType] = {
    "truncate_right": pb.OVERFLOW_POLICY_TRUNCATE_RIGHT,
    "truncate_left": pb.OVERFLOW_POLICY_TRUNCATE_LEFT,
    "error": pb.OVERFLOW_POLICY_ERROR,
    "chunk": pb.OVERFLOW_POLICY_CHUNK,
}


def _lookup(table: dict[str, V], name: str, what: str) -> V:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"{what} must be one of {', '.join(table)}; got {name!r}") from None


def task_value(task: TaskName | None) -> pb.Task.ValueType:
    return pb.TASK_UNSPECIFIED if task is None else _lookup(_TASKS, task, "task")


def build_options(
    task: TaskName | None = None,
    prompt: str | None = None,
    dimensions: int | None = None,
    normalize: bool | None = None,
    pooling: PoolingName | None = None,
    overflow: OverflowName | None = None,
) -> pb.EmbedOptions:
    """Unset arguments keep the server's (the model's) defaults."""
    options = pb.EmbedOptions(task=task_value(task))
    if prompt is not None:
        options.prompt = prompt
    if dimensions is not None:
        options.dimensions = dimensions
    if normalize is not None:
        options.normalize = normalize
    if pooling is not None:
        options.pooling = _lookup(_POOLINGS, pooling, "pooling")
    if overflow is not None:
        options.overflow = _lookup(_OVERFLOWS, overflow, "overflow")
    return options


def vectors_of(embeddings: Sequence[pb.Embedding], dimensions: int) -> Vectors:
    out = np.empty((len(embeddings), dimensions), dtype=np.float32)
    for row, embedding in enumerate(embeddings):
        out[row] = embedding.values
    return out


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def as_list(texts: str | Sequence[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)
