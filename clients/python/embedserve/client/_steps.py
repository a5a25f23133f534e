"""What a client method does, written once for both clients.

Each method of the client is a *plan*: a generator that yields the calls it needs
(:class:`Unary`, :class:`Pipelined`, :class:`LastOf`, :class:`Sleep`), gets each one's
answer back (or its error thrown in), and returns the method's result; streaming
methods return a :class:`~embedserve.client._ordered.StreamPlan`. The blocking and the
asyncio client only know how to perform these steps; :func:`blocking`, :func:`awaiting`
and their stream twins turn a plan function into a method of either client.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from embedserve.client._ordered import StreamPlan

P = ParamSpec("P")
R = TypeVar("R")
Out = TypeVar("Out")


@dataclasses.dataclass(frozen=True)
class Unary:
    """One unary call; ``timeout`` None means the client's own."""

    service: str  # "embedding", "vectors" or "health"
    method: str
    request: Any
    timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class Pipelined:
    """Unary calls of one method with at most ``max_in_flight`` outstanding; answers in order."""

    service: str
    method: str
    requests: Sequence[Any]
    max_in_flight: int


@dataclasses.dataclass(frozen=True)
class LastOf:
    """Run a stream to its end; the answer is its last output (None when there was none)."""

    stream: StreamPlan[Any, Any]


@dataclasses.dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Unary | Pipelined | LastOf | Sleep
Plan = Generator[Step, Any, R]


class PlanRun(Generic[R]):
    """Steps a plan along: the client performs each step and hands back its answer or error;
    None from start/send/throw means the plan returned (its value is ``result``)."""

    def __init__(self, plan: Plan[R]) -> None:
        self._plan = plan
        self._result: tuple[R] | None = None

    def start(self) -> Step | None:
        return self._advance(lambda: next(self._plan))

    def send(self, answer: Any) -> Step | None:
        return self._advance(lambda: self._plan.send(answer))

    def throw(self, error: BaseException) -> Step | None:
        return self._advance(lambda: self._plan.throw(error))

    def _advance(self, move: Callable[[], Step]) -> Step | None:
        try:
            return move()
        except StopIteration as stop:
            self._result = (stop.value,)
            return None

    @property
    def result(self) -> R:
        assert self._result is not None, "the plan has not returned"
        return self._result[0]


class BlockingRunner(Protocol):
    def _run(self, plan: Plan[R]) -> R: ...

    def _stream(self, plan: StreamPlan[Any, Out]) -> Iterator[Out]: ...


class AsyncRunner(Protocol):
    async def _run(self, plan: Plan[R]) -> R: ...

    def _stream(self, plan: StreamPlan[Any, Out]) -> AsyncIterator[Out]: ...


def blocking(plan: Callable[P, Plan[R]]) -> Callable[Concatenate[BlockingRunner, P], R]:
    @functools.wraps(plan)
    def method(self: BlockingRunner, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(plan(*args, **kwargs))

    return method


def awaiting(
    plan: Callable[P, Plan[R]],
) -> Callable[Concatenate[AsyncRunner, P], Coroutine[Any, Any, R]]:
    @functools.wraps(plan)
    async def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(plan(*args, **kwargs))

    return method


def blocking_stream(
    plan: Callable[P, StreamPlan[Any, Out]],
) -> Callable[Concatenate[BlockingRunner, P], Iterator[Out]]:
    @functools.wraps(plan)
    def method(self: BlockingRunner, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Out]:
        return self._stream(plan(*args, **kwargs))

    return method


def async_stream(
    plan: Callable[P, StreamPlan[Any, Out]],
) -> Callable[Concatenate[AsyncRunner, P], AsyncIterator[Out]]:
    @functools.wraps(plan)
    def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Out]:
        return self._stream(plan(*args, **kwargs))

    return method
