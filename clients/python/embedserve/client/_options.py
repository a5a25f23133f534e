"""Request building and response decoding shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from embedserve.client._unicode import surrogate_problem
from embedserve.v1 import embedding_pb2 as pb

TaskName = Literal["query", "document", "none"]
PoolingName = Literal["mean", "cls", "last_token"]
OverflowName = Literal["truncate_right", "truncate_left", "error", "chunk"]
PriorityName = Literal["interactive", "bulk"]
PrecisionName = Literal["int8", "uint8", "binary", "ubinary"]
Vectors = npt.NDArray[np.float32]
Quantized = npt.NDArray[np.int8] | npt.NDArray[np.uint8]

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
_PRIORITIES: dict[str, pb.Priority.ValueType] = {
    "interactive": pb.PRIORITY_INTERACTIVE,
    "bulk": pb.PRIORITY_BULK,
}

# Each format's proto value and numpy type: the signed ones are int8, the others uint8.
_PRECISIONS: dict[str, tuple[pb.Precision.ValueType, type[np.integer]]] = {
    "int8": (pb.PRECISION_INT8, np.int8),
    "uint8": (pb.PRECISION_UINT8, np.uint8),
    "binary": (pb.PRECISION_BINARY, np.int8),
    "ubinary": (pb.PRECISION_UBINARY, np.uint8),
}


def lookup(table: dict[str, V], name: str, what: str) -> V:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"{what} must be one of {', '.join(table)}; got {name!r}") from None


def overflow_value(overflow: OverflowName | None) -> pb.OverflowPolicy.ValueType:
    if overflow is None:
        return pb.OVERFLOW_POLICY_UNSPECIFIED
    return lookup(_OVERFLOWS, overflow, "overflow")


def task_value(task: TaskName | None) -> pb.Task.ValueType:
    return pb.TASK_UNSPECIFIED if task is None else lookup(_TASKS, task, "task")


class UnknownOption(TypeError):
    """A keyword no option has; the client method re-raises it under its own name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unexpected keyword argument {name!r}")
        self.name = name


def build_options(
    task: TaskName | None = None,
    prompt: str | None = None,
    dimensions: int | None = None,
    normalize: bool | None = None,
    pooling: PoolingName | None = None,
    overflow: OverflowName | None = None,
    priority: PriorityName | None = None,
    **unknown: object,
) -> pb.EmbedOptions:
    """Unset arguments keep the server's (the model's) defaults. ``priority="bulk"`` lets
    queries go first (writes are bulk already); ``"interactive"`` puts a write first."""
    if unknown:  # the methods pass their other keywords on here
        raise UnknownOption(next(iter(unknown)))
    options = pb.EmbedOptions(task=task_value(task))
    if prompt is not None:
        options.prompt = prompt
    if dimensions is not None:
        check_uint32("dimensions", dimensions)
        options.dimensions = dimensions
    if normalize is not None:
        options.normalize = normalize
    if pooling is not None:
        options.pooling = lookup(_POOLINGS, pooling, "pooling")
    options.overflow = overflow_value(overflow)
    if priority is not None:
        options.priority = lookup(_PRIORITIES, priority, "priority")
    return options


def vectors_of(embeddings: Sequence[pb.Embedding], dimensions: int) -> Vectors:
    out = np.empty((len(embeddings), dimensions), dtype=np.float32)
    for row, embedding in enumerate(embeddings):
        out[row] = embedding.values
    return out


def precision_value(precision: PrecisionName) -> pb.Precision.ValueType:
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}; got {precision!r}")
    return _PRECISIONS[precision][0]


def quantized_of(embeddings: Sequence[pb.Embedding], precision: PrecisionName) -> Quantized:
    """The rows of ``Embedding.quantized`` as one array of ``precision``'s numpy type."""
    if any(e.values and not e.quantized for e in embeddings):
        raise RuntimeError("the server answered float32 vectors: it predates Embed's precision")
    dtype = _PRECISIONS[precision][1]
    return np.stack([np.frombuffer(e.quantized, dtype=dtype) for e in embeddings])


class Batcher(Generic[T]):
    """Cuts a sequence into batches of ``size`` as its items come (sync or async)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("batch_size must be at least 1")
        self._size = size
        self._batch: list[T] = []

    def add(self, item: T) -> list[T] | None:
        """The batch this item completes, if it does."""
        self._batch.append(item)
        if len(self._batch) < self._size:
            return None
        full, self._batch = self._batch, []
        return full

    def rest(self) -> list[T]:
        rest, self._batch = self._batch, []
        return rest


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batcher = Batcher[T](size)
    for item in items:
        if (full := batcher.add(item)) is not None:
            yield full
    if rest := batcher.rest():
        yield rest


def as_list(texts: str | Sequence[str]) -> list[str]:
    return checked_texts([texts] if isinstance(texts, str) else list(texts))


def refuse_string(values: object, what: str) -> None:
    """A string where a collection of values belongs would be read as its characters
    (delete "abc" would delete "a", "b" and "c"). ``what``: "ids takes a list of ids"."""
    if isinstance(values, str | bytes):
        raise TypeError(f"{what}, not a single string")


def listed(values: Iterable[T], what: str) -> list[T]:
    """``values`` as a list, a single string refused (``refuse_string``)."""
    refuse_string(values, what)
    return list(values)


def check_uint32(name: str, number: int | None) -> None:
    """The message's uint32 fields: protobuf's own error would not name the field."""
    whole = isinstance(number, int) and not isinstance(number, bool)
    if number is not None and not (whole and 0 <= number < 2**32):
        raise ValueError(f"{name} must be a whole number from 0 to 2**32 - 1, got {number!r}")


def checked_text(name: str, text: str) -> str:
    """``text``, or an error naming ``name`` when it is not a string, or not text."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {type(text).__name__}")
    if (problem := surrogate_problem(text)) is not None:
        raise ValueError(f"{name} {problem}")
    return text


def checked_texts(texts: list[str], first: int = 0) -> list[str]:
    """``texts`` (numbered from ``first``), or an error naming the first that is not a
    string, or not text: protobuf's own errors name neither the value nor where it is."""
    for position, text in enumerate(texts, first):
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings; text {position} is {type(text).__name__}")
        if (problem := surrogate_problem(text)) is not None:
            raise ValueError(f"text {position} {problem}")
    return texts
