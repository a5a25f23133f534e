"""The bounded, ordered, acknowledged stream both clients run their streaming calls on.

A stream sends numbered messages (``0``, ``1``, ...) built from batches of the caller's
items; at most ``max_in_flight`` of them await their answer, so the caller's iterable
is read only as fast as the server answers. Answers must come in the order sent; each
one is checked against its message and turned into the caller's outputs. Leaving the
iteration early stops the sender and cancels the call. An error raised while reading the
caller's items (any exception, SystemExit and KeyboardInterrupt too) ends the sending: the
items read before it are sent and answered, then the error is raised as it was. One
raised while making a batch into a message (a document with neither text nor vector)
does the same, that batch unsent. (grpc alone would cancel the call, report an UNKNOWN
status or a cancellation, and lose the answers to what was sent; or, for an exception
that is no Exception, end its sending thread and never end the call.)

:class:`StreamPlan` says what one stream sends and returns (shared by both clients);
:func:`run_blocking` and :func:`run_async` run it on a grpc or grpc.aio stream call.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Any, Generic, TypeVar

import grpc

from embedserve.client._errors import task_cancelled
from embedserve.client._options import Batcher, batches

Item = TypeVar("Item")
Out = TypeVar("Out")

# Sender threads of the blocking client look this often whether the stream is over.
_POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class StreamCall:
    """A stream-stream method and the field that carries its messages' ids."""

    service: str
    method: str
    id_field: str


@dataclasses.dataclass(frozen=True)
class StreamPlan(Generic[Item, Out]):
    """One streaming call: how items become numbered messages and what each answer yields."""

    call: StreamCall
    items: Iterable[Item] | AsyncIterable[Item]
    batch_size: int
    max_in_flight: int
    # (message number, batch of items) -> request message
    request: Callable[[int, list[Item]], Any]
    # (request, answer) -> outputs; raises when the answer does not match the request
    outputs: Callable[[Any, Any], Iterable[Out]]
    # the call's error -> what is raised (the same, or one naming the caller's item)
    failed: Callable[[Exception], Exception] = lambda error: error

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")


class _Sent:
    """Messages sent and not yet answered, oldest first (shared by both runners)."""

    def __init__(self, plan: StreamPlan[Any, Any]) -> None:
        self._plan = plan
        self._numbers = 0
        self._waiting: collections.deque[tuple[str, Any]] = collections.deque()
        self.failure: BaseException | None = None  # what the caller's items raised

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def next_request(self, batch: list[Any]) -> Any:
        number = self._numbers
        self._numbers += 1
        request = self._plan.request(number, batch)
        self._waiting.append((str(number), request))
        return request

    def answered(self, answer: Any) -> Sequence[Any]:
        expected, request = self._waiting.popleft()
        field = self._plan.call.id_field
        got = getattr(answer, field)
        if got != expected:
            raise RuntimeError(f"stream out of order: got {field} {got!r}, expected {expected!r}")
        return list(self._plan.outputs(request, answer))


def _callers(error: BaseException) -> bool:
    """Whether ``error`` is the caller's, to be raised once what was sent is answered: any
    but the end of the sending itself (its generator closed, its task cancelled)."""
    if isinstance(error, GeneratorExit):
        return False
    return not (isinstance(error, asyncio.CancelledError) and task_cancelled())


def _until_failure(items: Iterable[Item], sent: _Sent) -> Iterator[Item]:
    """``items`` until reading them raises; the error is kept in ``sent``, so the items
    read before it are still sent."""
    try:
        yield from items
    except BaseException as exc:
        if not _callers(exc):
            raise
        sent.failure = exc


async def _async_until_failure(items: AsyncIterable[Item], sent: _Sent) -> AsyncIterator[Item]:
    """:func:`_until_failure` of an async iterable."""
    try:
        async for item in items:
            yield item
    except BaseException as exc:
        if not _callers(exc):
            raise
        sent.failure = exc


async def _abatches(
    items: Iterable[Item] | AsyncIterable[Item], size: int
) -> AsyncIterator[list[Item]]:
    if not isinstance(items, AsyncIterable):
        for whole in batches(items, size):
            yield whole
        return
    batcher = Batcher[Item](size)
    async for item in items:
        if (full := batcher.add(item)) is not None:
            yield full
    if rest := batcher.rest():
        yield rest


def run_blocking(
    call: Callable[..., Any], plan: StreamPlan[Item, Out], **kwargs: Any
) -> Iterator[Out]:
    """Runs ``plan`` on a grpc stream-stream callable; grpc reads the requests on its own
    thread, which waits here for a free slot."""
    items = plan.items
    if isinstance(items, AsyncIterable):
        raise TypeError("the blocking client streams a (synchronous) iterable")
    sent = _Sent(plan)
    slots = threading.Semaphore(plan.max_in_flight)
    over = threading.Event()

    def requests() -> Iterator[Any]:
        try:
            for batch in batches(_until_failure(items, sent), plan.batch_size):
                while not slots.acquire(timeout=_POLL_S):
                    if over.is_set():
                        return
                yield sent.next_request(batch)
        except BaseException as exc:  # building a message: raised once all sent is answered
            if not _callers(exc):
                raise
            sent.failure = exc

    answers = call(requests(), **kwargs)
    try:
        for answer in answers:
            outputs = sent.answered(answer)
            slots.release()
            yield from outputs
    except grpc.RpcError as exc:
        raise plan.failed(exc) from None
    finally:
        over.set()
        answers.cancel()
    sent.raise_failure()


async def run_async(
    call: Callable[..., Any], plan: StreamPlan[Item, Out], **kwargs: Any
) -> AsyncGenerator[Out, None]:
    """Runs ``plan`` on a grpc.aio stream-stream callable (items may be an async iterable)."""
    sent = _Sent(plan)
    slots = asyncio.Semaphore(plan.max_in_flight)
    items = (
        _async_until_failure(plan.items, sent)
        if isinstance(plan.items, AsyncIterable)
        else _until_failure(plan.items, sent)
    )

    async def requests() -> AsyncIterator[Any]:
        try:
            async for batch in _abatches(items, plan.batch_size):
                await slots.acquire()
                yield sent.next_request(batch)
        except BaseException as exc:  # building a message: raised once all sent is answered
            if not _callers(exc):
                raise
            sent.failure = exc

    stream = call(requests(), **kwargs)
    try:
        async for answer in stream:
            outputs = sent.answered(answer)
            slots.release()
            for output in outputs:
                yield output
    except grpc.RpcError as exc:
        raise plan.failed(exc) from None
    finally:
        stream.cancel()
    sent.raise_failure()
