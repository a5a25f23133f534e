"""Errors raised by the vector-store layer.

Backends translate their own exceptions into this hierarchy at the boundary, so callers
never see an engine- or transport-specific type::

    StoreError
    ├── InvalidRequest            the caller's mistake; also a ValueError
    │   ├── InvalidFilter
    │   └── DimensionMismatch     carries .expected and .got
    ├── CollectionNotFound
    ├── CollectionExists
    ├── PointNotFound             an example id given to recommend() does not exist
    ├── StoreLocked               the data directory is held by another process
    ├── StoreFull                 the data directory's file system is out of space
    ├── StoreClosed
    ├── EngineFailure             the embedded engine cannot read its files; not retried
    ├── TransientStoreError       retryable: timeouts, connection and I/O hiccups
    └── StoreUnavailable          retries ran out; carries .attempts
"""

from __future__ import annotations

import errno
from collections.abc import Sequence


class StoreError(Exception):
    """Base class of every error raised by the vector-store layer."""


class InvalidRequest(StoreError, ValueError):
    """The request cannot succeed as given (bad argument, bad value, bad name)."""


class InvalidFilter(InvalidRequest):
    """A filter or one of its conditions is malformed."""


class DimensionMismatch(InvalidRequest):
    """A vector's length differs from the collection's vector size."""

    def __init__(self, expected: int, got: int, *, collection: str | None = None) -> None:
        self.expected = expected
        self.got = got
        self.collection = collection
        where = f" for collection {collection!r}" if collection else ""
        super().__init__(f"vector dimension mismatch{where}: expected {expected}, got {got}")


class SettingsChanged(InvalidRequest):
    """A call was made for settings that its collection no longer has: it carries BM25
    keyword vectors for a collection now without them (another client re-created it since
    the caller read its settings). Read them again and make the call anew."""


class CollectionNotFound(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"collection {name!r} not found")


class CollectionExists(StoreError):
    """The name is taken, by a collection or by an alias (they share one namespace)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a collection or alias named {name!r} already exists")


class AliasNotFound(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"alias {name!r} not found")


class NameIsAlias(StoreError):
    """A collection-only operation (delete) named an alias."""

    def __init__(self, name: str, collection: str) -> None:
        self.name = name
        self.collection = collection
        super().__init__(
            f"{name!r} is an alias of collection {collection!r}: delete the alias, "
            f"or the collection {collection!r} itself"
        )


class PointNotFound(StoreError):
    def __init__(self, collection: str, ids: Sequence[str]) -> None:
        self.collection = collection
        self.ids = tuple(ids)
        shown = ", ".join(repr(i) for i in self.ids)
        super().__init__(f"points not found in collection {collection!r}: {shown}")


class StoreLocked(StoreError):
    """Another process (or another store object) already holds the data directory."""


class StoreRefused(StoreError):
    """The Qdrant server refused embedserve's credentials (``qdrant_api_key``). Not
    retried, and no outage: it takes an operator to set the key the server expects."""


class StoreFull(StoreError):
    """The data directory's file system ran out of space. Not retried: it takes an operator
    (or a delete) to free space; the next call after that works again."""


# How the engines and the OS word it: "No space left on device (os error 28)".
_NO_SPACE = ("no space left on device", "os error 28")


def out_of_space(error: BaseException | str) -> bool:
    """Whether ``error`` (an exception or a server's message) says the disk is full."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    lowered = str(error).lower()
    return any(marker in lowered for marker in _NO_SPACE)


def os_failure(what: str, exc: OSError) -> StoreError:
    """``what`` failed with ``exc``: StoreFull for a full disk, else a plain StoreError."""
    cls = StoreFull if out_of_space(exc) else StoreError
    return cls(f"{what}: {exc}")


class StoreClosed(StoreError):
    def __init__(self) -> None:
        super().__init__("the vector store is closed")


class EngineFailure(StoreError):
    """The embedded engine failed in a way a retry repeats: most often a file of the data
    directory it cannot read (truncated or damaged). Not retried, and no outage to wait
    out: it takes an operator (restoring the files) to mend."""


class TransientStoreError(StoreError):
    """A failure that may go away on retry: timeouts, refused connections, I/O hiccups."""


class StoreUnavailable(StoreError):
    """Retrying a transient failure did not succeed within the retry bounds."""

    def __init__(self, attempts: int, elapsed_s: float, last_error: BaseException) -> None:
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        self.last_error = last_error
        super().__init__(
            f"vector store unavailable after {attempts} attempts in {elapsed_s:.2f}s: {last_error}"
        )
