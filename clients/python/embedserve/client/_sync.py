"""Blocking client: performs the shared plans (_calls, _vector_calls) on a grpc channel."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import grpc

from embedserve.client import _analysis_calls as analysis_calls
from embedserve.client import _calls as calls
from embedserve.client import _vector_calls as vector_calls
from embedserve.client._connection import (
    CHANNEL_OPTIONS,
    DEFAULT_TARGET,
    channel_args,
    metadata,
    stubs,
)
from embedserve.client._documents import StoredDocument
from embedserve.client._errors import client_closed
from embedserve.client._ordered import StreamPlan, run_blocking
from embedserve.client._steps import (
    LastOf,
    Pipelined,
    Plan,
    PlanRun,
    Sleep,
    Step,
    Unary,
    blocking,
    blocking_stream,
    deadline_after,
    default_timeout,
    shorter,
    time_left,
)

__all__ = ["CHANNEL_OPTIONS", "DEFAULT_TARGET", "EmbedClient"]

R = TypeVar("R")
Out = TypeVar("Out")


class EmbedClient:
    """Calls an embedserve server. Vectors come back as float32 numpy arrays.

    Options (``task``, ``prompt``, ``dimensions``, ``normalize``, ``pooling``,
    ``overflow``) default to the model's own settings. The VectorService methods
    (collections, ``upsert``, ``ingest``, ``search``, ``recommend``, ``get``,
    ``delete``, ``count``) are on the same client. Failed calls raise
    ``grpc.RpcError`` with the server's status code and message.
    """

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
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._stubs = stubs(self._channel)
        self._stub = self._stubs["embedding"]
        self._closed = False

    def __enter__(self) -> EmbedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel: calls in flight end CANCELLED, later ones raise ValueError."""
        self._closed = True
        self._channel.close()

    # The methods, one line each: what they send and return is written once in _calls and
    # _vector_calls, for this client and the asyncio one.
    embed = blocking(calls.embed)
    embed_quantized = blocking(calls.embed_quantized)
    embed_iter = blocking_stream(calls.embed_iter)
    embed_quantized_iter = blocking_stream(calls.embed_quantized_iter)
    embed_tokens = blocking(calls.embed_tokens)
    tokenize = blocking(calls.tokenize)
    similarity = blocking(calls.similarity)
    rerank = blocking(calls.rerank)
    model_info = blocking(calls.model_info)
    health = blocking(calls.health)
    wait_until_serving = blocking(calls.wait_until_serving)
    create_collection = blocking(vector_calls.create_collection)
    list_collections = blocking(vector_calls.list_collections)
    get_collection = blocking(vector_calls.get_collection)
    update_collection = blocking(vector_calls.update_collection)
    delete_collection = blocking(vector_calls.delete_collection)
    update_aliases = blocking(vector_calls.update_aliases)
    list_aliases = blocking(vector_calls.list_aliases)
    upsert = blocking(vector_calls.upsert)
    ingest_iter = blocking_stream(vector_calls.ingest_iter)
    ingest = blocking(vector_calls.ingest)
    search = blocking(vector_calls.search)
    search_groups = blocking(vector_calls.search_groups)
    recommend = blocking(vector_calls.recommend)
    recommend_groups = blocking(vector_calls.recommend_groups)
    get = blocking(vector_calls.get)
    delete = blocking(vector_calls.delete)
    update_payload = blocking(vector_calls.update_payload)
    facet = blocking(vector_calls.facet)
    search_batch = blocking(vector_calls.search_batch)
    search_batch_groups = blocking(vector_calls.search_batch_groups)
    count = blocking(vector_calls.count)
    scroll = blocking(analysis_calls.scroll)
    cluster = blocking(analysis_calls.cluster)
    find_duplicates = blocking(analysis_calls.find_duplicates)

    def scroll_iter(
        self,
        collection: str,
        *,
        page_size: int = 256,
        exact_payloads: bool = False,
        **options: Any,
    ) -> Iterator[StoredDocument]:
        """Every stored document (matching ``filter``), one page request at a time;
        ``exact_payloads`` as for ``scroll``."""
        cursor: str | None = None
        options["exact_payloads"] = exact_payloads
        while True:
            page, cursor = self.scroll(collection, limit=page_size, cursor=cursor, **options)
            yield from page
            if cursor is None:
                return

    def _run(self, plan: Plan[R]) -> R:
        run = PlanRun(plan)
        step = run.start()
        while step is not None:
            try:
                answer = self._perform(step)
            except Exception as exc:
                step = run.throw(exc)
            else:
                step = run.send(answer)
        return run.result

    def _stream(self, plan: StreamPlan[Any, Out]) -> Iterator[Out]:
        call = self._method(plan.call.service, plan.call.method)
        return run_blocking(call, plan, metadata=self._metadata)

    def _method(self, service: str, method: str) -> Any:
        """A stub's method, while the client is open."""
        if self._closed:
            raise client_closed()
        return getattr(self._stubs[service], method)

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Unary):
            call = self._method(step.service, step.method)
            return call(step.request, **self._options(step.timeout))
        if isinstance(step, Pipelined):
            return self._pipelined(step)
        if isinstance(step, LastOf):
            last = None
            for last in self._stream(step.stream):  # noqa: B007 - only the last one counts
                pass
            return last
        assert isinstance(step, Sleep)
        time.sleep(step.seconds)
        return None

    def _pipelined(self, step: Pipelined) -> list[Any]:
        """The step's calls, at most ``max_in_flight`` at once, all within one deadline:
        the client's timeout bounds the method call, however many requests it takes. The
        next call starts once the oldest is answered, so that none starts after a failure."""
        call = self._method(step.service, step.method)
        deadline = deadline_after(self._timeout)
        pending: collections.deque[grpc.Future[Any]] = collections.deque()
        answers: list[Any] = []
        try:
            for request in step.requests:
                if len(pending) >= step.max_in_flight:
                    answers.append(pending.popleft().result())
                timeout = time_left(deadline)
                pending.append(call.future(request, timeout=timeout, metadata=self._metadata))
            while pending:
                answers.append(pending.popleft().result())
        except BaseException as exc:
            for future in pending:  # the method has failed: no call of it may go on
                future.cancel()
            if isinstance(exc, grpc.RpcError):  # of the request after those answered
                raise step.failed(len(answers), exc) from None
            raise
        return answers

    def _options(self, timeout: float | None) -> dict[str, Any]:
        return {"timeout": shorter(timeout, self._timeout), "metadata": self._metadata}
