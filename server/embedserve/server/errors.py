"""The one error type of the core, and its single table to gRPC status codes.

Servicers raise or receive ``EmbedServeError`` subclasses; the handler wrappers in
``status.py`` translate them with ``status_of``, and nothing else picks status codes.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator


class ErrorKind(enum.Enum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"


class EmbedServeError(Exception):
    """Base of every error the core reports to a caller."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@contextlib.contextmanager
def named(what: str) -> Iterator[None]:
    """Errors raised inside begin with what they are about (``what: message``): which
    item of a batch or a stream failed."""
    try:
        yield
    except EmbedServeError as exc:
        exc.message = f"{what}: {exc.message}"
        raise


class InvalidArgument(EmbedServeError):
    """The caller sent something the server cannot accept; the message names the field."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(EmbedServeError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(EmbedServeError):
    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(EmbedServeError):
    kind = ErrorKind.FAILED_PRECONDITION


class Overloaded(EmbedServeError):
    """The queue is full; unary callers may retry after ``retry_after_ms``."""

    kind = ErrorKind.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class RateLimited(Overloaded):
    """The caller is over its rate limit."""


class Unauthenticated(EmbedServeError):
    """No API key, or one the server does not know."""

    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(EmbedServeError):
    """A known key whose role or collection list does not cover the call."""

    kind = ErrorKind.PERMISSION_DENIED


class NotReady(EmbedServeError):
    """The server is warming up or draining."""

    kind = ErrorKind.UNAVAILABLE


class DeadlineExpired(EmbedServeError):
    kind = ErrorKind.DEADLINE_EXCEEDED


class Cancelled(EmbedServeError):
    kind = ErrorKind.CANCELLED


class InferenceFailed(EmbedServeError):
    """The model failed on a batch (e.g. out of memory); only that batch's requests see it."""

    kind = ErrorKind.UNAVAILABLE


class AnalysisFailed(EmbedServeError):
    """Analysis work run in a child process ended without its answer."""

    kind = ErrorKind.INTERNAL


class ModelLoadError(EmbedServeError):
    """The model could not be loaded; the message says which model and what to do instead."""

    kind = ErrorKind.FAILED_PRECONDITION


class OutOfSpace(EmbedServeError):
    """The store's disk is full: retrying will not help until space is freed."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class StoreFailed(EmbedServeError):
    """The embedded store cannot read its own files: a retry would fail the same way."""

    kind = ErrorKind.INTERNAL


class StoreDown(EmbedServeError):
    """The vector store failed or stayed unreachable after retries."""

    kind = ErrorKind.UNAVAILABLE
