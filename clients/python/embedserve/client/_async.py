"""asyncio client on grpc.aio: performs the same plans as the blocking client."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from embedserve.client import _analysis_calls as analysis_calls
from embedserve.client import _calls as calls
from embedserve.client import _vector_calls as vector_calls
from embedserve.client._connection import (
    DEFAULT_TARGET,
    channel_args,
    metadata,
    stubs,
)
from embedserve.client._documents import StoredDocument
from embedserve.client._errors import client_closed, closed_in_flight, task_cancelled
from embedserve.client._ordered import StreamPlan, run_async
from embedserve.client._steps import (
    LastOf,
    Pipelined,
    Plan,
    PlanRun,
    Sleep,
    Step,
    Unary,
    async_stream,
    awaiting,
    deadline_after,
    default_timeout,
    shorter,
    time_left,
)

R = TypeVar("R")
Out = TypeVar("Out")


class AsyncEmbedClient:
    """The asyncio twin of :class:`EmbedClient`, with the same methods (coroutines, and
    async iterators for ``embed_iter`` and ``ingest_iter``, which also take async
    iterables); failed calls raise ``grpc.aio.AioRpcError``. Make it inside the event loop
    that uses it: grpc.aio ties its channel to the loop running when it is made."""

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        timeout: float | None = 300.0,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        server_name: str | None = None,
    ) -> None:
        self._timeout = default_timeout(timeout)  # refused before a channel is made
        self._metadata = metadata(api_key)  # as is a key grpc cannot send
        address, options = channel_args(target, server_name)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(address, credentials, options=options)
        self._stubs = stubs(self._channel)
        self._closed = False

    async def __aenter__(self) -> AsyncEmbedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel: calls in flight end CANCELLED, later ones raise ValueError."""
        self._closed = True
        await self._channel.close()

    # Written once in _calls and _vector_calls, shared with the blocking client.
    embed = awaiting(calls.embed)
    embed_quantized = awaiting(calls.embed_quantized)
    embed_iter = async_stream(calls.embed_iter)
    embed_quantized_iter = async_stream(calls.embed_quantized_iter)
    embed_tokens = awaiting(calls.embed_tokens)
    tokenize = awaiting(calls.tokenize)
    similarity = awaiting(calls.similarity)
    rerank = awaiting(calls.rerank)
    model_info = awaiting(calls.model_info)
    health = awaiting(calls.health)
    wait_until_serving = awaiting(calls.wait_until_serving)
    create_collection = awaiting(vector_calls.create_collection)
    list_collections = awaiting(vector_calls.list_collections)
    get_collection = awaiting(vector_calls.get_collection)
    update_collection = awaiting(vector_calls.update_collection)
    delete_collection = awaiting(vector_calls.delete_collection)
    update_aliases = awaiting(vector_calls.update_aliases)
    list_aliases = awaiting(vector_calls.list_aliases)
    upsert = awaiting(vector_calls.upsert)
    ingest_iter = async_stream(vector_calls.ingest_iter)
    ingest = awaiting(vector_calls.ingest)
    search = awaiting(vector_calls.search)
    search_groups = awaiting(vector_calls.search_groups)
    recommend = awaiting(vector_calls.recommend)
    recommend_groups = awaiting(vector_calls.recommend_groups)
    get = awaiting(vector_calls.get)
    delete = awaiting(vector_calls.delete)
    update_payload = awaiting(vector_calls.update_payload)
    facet = awaiting(vector_calls.facet)
    search_batch = awaiting(vector_calls.search_batch)
    search_batch_groups = awaiting(vector_calls.search_batch_groups)
    count = awaiting(vector_calls.count)
    scroll = awaiting(analysis_calls.scroll)
    cluster = awaiting(analysis_calls.cluster)
    find_duplicates = awaiting(analysis_calls.find_duplicates)

    async def scroll_iter(
        self,
        collection: str,
        *,
        page_size: int = 256,
        exact_payloads: bool = False,
        **options: Any,
    ) -> AsyncIterator[StoredDocument]:
        """Every stored document (matching ``filter``), one page request at a time;
        ``exact_payloads`` as for ``scroll``."""
        cursor: str | None = None
        options["exact_payloads"] = exact_payloads
        while True:
            page, cursor = await self.scroll(collection, limit=page_size, cursor=cursor, **options)
            for document in page:
                yield document
            if cursor is None:
                return

    async def _run(self, plan: Plan[R]) -> R:
        run = PlanRun(plan)
        step = run.start()
        while step is not None:
            try:
                with self._ended_by_close():
                    answer = await self._perform(step)
            except Exception as exc:
                step = run.throw(exc)
            else:
                step = run.send(answer)
        return run.result

    def _stream(self, plan: StreamPlan[Any, Out]) -> AsyncIterator[Out]:
        call = self._method(plan.call.service, plan.call.method)
        return self._closable(run_async(call, plan, metadata=self._metadata))

    async def _closable(self, outputs: AsyncGenerator[Out, None]) -> AsyncIterator[Out]:
        """A stream's outputs, ended as :meth:`_ended_by_close` says."""
        async with contextlib.aclosing(outputs):
            with self._ended_by_close():
                async for output in outputs:
                    yield output

    @contextlib.contextmanager
    def _ended_by_close(self) -> Iterator[None]:
        """A call that close() cancelled raises CANCELLED, as in the blocking client: grpc.aio
        raises asyncio.CancelledError, in a task nobody cancelled. A task's own cancellation
        (``task.cancel()``, asyncio.timeout) goes on as it is."""
        try:
            yield
        except asyncio.CancelledError:
            if not self._closed or task_cancelled():
                raise
            raise closed_in_flight() from None

    def _method(self, service: str, method: str) -> Any:
        """A stub's method, while the client is open."""
        if self._closed:
            raise client_closed()
        return getattr(self._stubs[service], method)

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Unary):
            call = self._method(step.service, step.method)
            return await call(step.request, **self._options(step.timeout))
        if isinstance(step, Pipelined):
            return await self._pipelined(step)
        if isinstance(step, LastOf):
            last = None
            async for last in self._stream(step.stream):  # noqa: B007 - only the last one counts
                pass
            return last
        assert isinstance(step, Sleep)
        await asyncio.sleep(step.seconds)
        return None

    async def _pipelined(self, step: Pipelined) -> list[Any]:
        """The step's calls, at most ``max_in_flight`` at once, all within one deadline:
        the client's timeout bounds the method call, however many requests it takes. The
        next call starts once the oldest is answered, so that none starts after a failure."""
        call = self._method(step.service, step.method)
        deadline = deadline_after(self._timeout)
        pending: collections.deque[grpc.aio.UnaryUnaryCall[Any, Any]] = collections.deque()
        answers: list[Any] = []
        try:
            for request in step.requests:
                if len(pending) >= step.max_in_flight:
                    answers.append(await pending.popleft())
                timeout = time_left(deadline)
                pending.append(call(request, timeout=timeout, metadata=self._metadata))
            while pending:
                answers.append(await pending.popleft())
        except BaseException as exc:
            for running in pending:  # the method has failed: no call of it may go on
                running.cancel()
            if isinstance(exc, grpc.RpcError):  # of the request after those answered
                raise step.failed(len(answers), exc) from None
            raise
        return answers

    def _options(self, timeout: float | None) -> dict[str, Any]:
        return {"timeout": shorter(timeout, self._timeout), "metadata": self._metadata}
