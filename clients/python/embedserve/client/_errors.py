"""Errors the clients raise themselves, alike for both: a closed client, a call the
closing ended, and a server's error renumbered to name the caller's text."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc


def client_closed() -> ValueError:
    """A call on a closed client: grpc refuses it with ValueError in two wordings (blocking)
    or grpc.aio.UsageError (asyncio); both clients raise this instead."""
    return ValueError("the client is closed")


def closed_in_flight() -> grpc.aio.AioRpcError:
    """What a grpc.aio call that close() cancelled ends with: CANCELLED, as grpc's blocking
    client ends one, where grpc.aio raises asyncio.CancelledError in a task nobody cancelled."""
    empty = grpc.aio.Metadata()
    return grpc.aio.AioRpcError(grpc.StatusCode.CANCELLED, empty, empty, "the client was closed")


def task_cancelled() -> bool:
    """Whether the running task was cancelled (an asyncio.CancelledError raised in it is its
    own), not a grpc.aio call it awaited; False outside an event loop."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: a thread of the blocking client
        return False
    return task is not None and task.cancelling() > 0


def renumbered_in_request(error: Exception, first: int, field: str = "inputs") -> Exception:
    """``error`` of a request holding the caller's texts from ``first`` on, naming its text by
    its place in the caller's list: the server counts from the request's first text (as
    ``inputs[i]``, or a rerank's ``documents[i]``)."""
    details = _details(error)
    if (found := re.match(rf"{field}\[(\d+)\]", details)) is None:
        return error
    place = first + int(found[1])
    return _reworded(error, f"{field}[{place}]{details[found.end() :]}")


def renumbered_in_stream(
    error: Exception, batch_size: int, id_field: str = "request_id", field: str = "inputs"
) -> Exception:
    """:func:`renumbered_in_request` for a stream, whose error names the message
    (``request_id '2': inputs[5]``, an ingestion's ``batch_id '2': documents[5]``): message N
    holds the items from N * ``batch_size`` on."""
    details = _details(error)
    if (found := re.match(rf"{id_field} '(\d+)': {field}\[(\d+)\]", details)) is None:
        return error
    place = int(found[1]) * batch_size + int(found[2])
    reworded = f"{id_field} '{found[1]}': {field}[{place}]{details[found.end() :]}"
    return _reworded(error, reworded)


def _details(error: Exception) -> str:
    if not isinstance(error, grpc.RpcError) or not hasattr(error, "details"):
        return ""
    return str(error.details() or "")


def _reworded(error: Any, details: str) -> Exception:
    """``error`` with other details, of its own client's kind; status and metadata kept."""
    if isinstance(error, grpc.aio.AioRpcError):
        return grpc.aio.AioRpcError(
            error.code(),
            error.initial_metadata(),
            error.trailing_metadata(),
            details,
            error.debug_error_string(),
        )
    return RewordedRpcError(error, details)


class RewordedRpcError(grpc.RpcError, grpc.Call):
    """A blocking call's error with other details; anything else is the original call's."""

    def __init__(self, original: Any, details: str) -> None:
        super().__init__(details)
        self._original = original
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._original.code()  # type: ignore[no-any-return]

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Any:
        return self._original.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._original.trailing_metadata()

    def debug_error_string(self) -> str:
        return str(self._original.debug_error_string())

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False

    def __str__(self) -> str:
        return f"<RpcError: status = {self.code()}, details = {self._details!r}>"
