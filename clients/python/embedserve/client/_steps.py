"""What a client method does, written once for both clients.

Each method of the client is a *plan*: a generator that yields the calls it needs
(:class:`Unary`, :class:`Pipelined`, :class:`LastOf`, :class:`Sleep`), gets each one's
answer back (or its error thrown in), and returns the method's result; streaming
methods return a :class:`~embedserve.client._ordered.StreamPlan`. The blocking and the
asyncio client only know how to perform these steps; :func:`blocking`, :func:`awaiting`
and their stream twins turn a plan function into a method of either client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import operator
import time
import types
import typing
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Sequence,
)
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from embedserve.client._options import UnknownOption
from embedserve.client._ordered import StreamPlan

P = ParamSpec("P")
R = TypeVar("R")
Out = TypeVar("Out")


@dataclasses.dataclass(frozen=True)
class Unary:
    """One unary call; ``timeout`` bounds it within the client's own (None: the client's)."""

    service: str  # "embedding", "vectors" or "health"
    method: str
    request: Any
    timeout: float | None = None


# Longer timeouts are none: grpc's deadline overflowed past about 1e10 s, failing every call.
NO_DEADLINE_S = 1e9  # about 31 years


def default_timeout(timeout: float | None) -> float | None:
    """A client's default timeout for its unary calls: None, 0 or infinity for none (0, as
    in the Go and Java clients: as a deadline it failed every call at once)."""
    if timeout is None or timeout == 0 or timeout >= NO_DEADLINE_S:
        return None
    if not timeout > 0:  # NaN too
        raise ValueError(f"timeout must be positive seconds, or 0 or None for none: {timeout}")
    return float(timeout)


def shorter(timeout: float | None, other: float | None) -> float | None:
    """The shorter of two timeouts, None being none."""
    if timeout is None or other is None:
        return other if timeout is None else timeout
    return min(timeout, other)


def _unchanged(number: int, error: Exception) -> Exception:
    return error


@dataclasses.dataclass(frozen=True)
class Pipelined:
    """Unary calls of one method with at most ``max_in_flight`` outstanding; answers in order.
    ``failed``: what the error of request ``number`` (from 0) is raised as."""

    service: str
    method: str
    requests: Sequence[Any]
    max_in_flight: int
    failed: Callable[[int, Exception], Exception] = _unchanged

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:  # 0 would wait for a free slot forever
            raise ValueError("max_in_flight must be at least 1")


# What a call is given once its method's deadline has passed: grpc then fails it with
# its own DEADLINE_EXCEEDED, as it does any call that runs out of time.
_NO_TIME_LEFT_S = 1e-6


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic time by which all of a pipelined step's calls must be done."""
    return None if timeout is None else time.monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    """The timeout of a call started now, within ``deadline``."""
    return None if deadline is None else max(deadline - time.monotonic(), _NO_TIME_LEFT_S)


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
    def method(self: BlockingRunner, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with _named_after(plan):
            return self._run(plan(*args, **kwargs))

    return _described(method, plan, synchronous=True)


def awaiting(
    plan: Callable[P, Plan[R]],
) -> Callable[Concatenate[AsyncRunner, P], Coroutine[Any, Any, R]]:
    async def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with _named_after(plan):
            return await self._run(plan(*args, **kwargs))

    return _described(method, plan, synchronous=False)


def blocking_stream(
    plan: Callable[P, StreamPlan[Any, Out]],
) -> Callable[Concatenate[BlockingRunner, P], Iterator[Out]]:
    def method(self: BlockingRunner, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Out]:
        with _named_after(plan):
            return self._stream(plan(*args, **kwargs))

    return _described(method, plan, Iterator, synchronous=True)


def async_stream(
    plan: Callable[P, StreamPlan[Any, Out]],
) -> Callable[Concatenate[AsyncRunner, P], AsyncIterator[Out]]:
    def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Out]:
        with _named_after(plan):
            return self._stream(plan(*args, **kwargs))

    return _described(method, plan, AsyncIterator, synchronous=False)


@contextlib.contextmanager
def _named_after(plan: Callable[..., Any]) -> Iterator[None]:
    """An unknown keyword, which the plan passes on to ``build_options``, as Python reports
    one: naming the method called, not the function that noticed."""
    try:
        yield
    except UnknownOption as exc:
        message = f"{plan.__name__}() got an unexpected keyword argument {exc.name!r}"
        raise TypeError(message) from None


M = TypeVar("M", bound=Callable[..., Any])


def _described(method: M, plan: Callable[..., Any], stream: Any = None, *, synchronous: bool) -> M:
    """``method`` named and documented as ``plan``, with a signature of its own (for
    inspect.signature, help(), get_type_hints): ``self``, the plan's parameters (no async
    iterables for the blocking client) and the client's result (``stream``: Iterator or
    AsyncIterator of a stream plan's outputs). functools.wraps alone shows the plan's,
    without ``self``: a bound method's would lose its first real parameter."""
    functools.update_wrapper(method, plan)
    planned = inspect.signature(plan, eval_str=True)
    parameters = [
        p.replace(annotation=_synchronous(p.annotation)) if synchronous else p
        for p in planned.parameters.values()
    ]
    signature = planned.replace(
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *parameters],
        return_annotation=_returned(planned.return_annotation, stream),
    )
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = {
        p.name: p.annotation for p in parameters if p.annotation is not p.empty
    } | {"return": signature.return_annotation}
    return method


def _returned(plan_type: Any, stream: Any) -> Any:
    """R of Plan[R] (a Generator[Step, Any, R]), or ``stream[Out]`` of StreamPlan[Item, Out]."""
    if stream is not None:
        return stream[typing.get_args(plan_type)[1]]
    result = typing.get_args(plan_type)[2]
    return None if result is type(None) else result  # shown "-> None", as written


def _synchronous(annotation: Any) -> Any:
    """``annotation`` without its async iterables (``Iterable[str] | AsyncIterable[str]``
    is ``Iterable[str]``): what the blocking client takes."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    kept = [a for a in typing.get_args(annotation) if typing.get_origin(a) is not AsyncIterable]
    return functools.reduce(operator.or_, kept)
