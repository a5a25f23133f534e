"""Run the embedded engine in a child process, so its native work never stalls this one.

The engine holds Python's global lock while it builds an HNSW index (seconds for a
large segment); in-process, every thread of a server would freeze meanwhile, health
checks included. ``ProcessStore`` forwards each VectorStore call over a pipe to a child
that owns the engine. The child dies with its parent (PR_SET_PDEATHSIG), which also
drops its lock on the data directory, and a child that died is started again on the
next call (the engine recovers from its write-ahead log).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import errors
from .ordered_scroll import OrderValue, ScrollOrder
from .store import ContextManagerMixin
from .types import (
    CollectionInfo,
    CollectionSpec,
    CollectionUpdate,
    Example,
    FacetHit,
    Filter,
    PointRecord,
    RecommendStrategy,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchParams,
    SparseTerms,
    VectorLike,
)

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT_S = 120.0
# Below this much free space a dead engine is taken to have run out of it: a segment or a
# write-ahead log file grows by tens of MiB at a time.
LOW_SPACE_BYTES = 64 * 1024 * 1024


def _die_with_parent() -> None:
    # Not on Linux: the child still exits once the pipe closes.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_description(code: int | None) -> str:
    """How a child process ended, from its return code (None: not exited, its pipe closed)."""
    if code is None:
        return "its pipe closed"
    if code >= 0:
        return f"exit status {code}"
    with contextlib.suppress(ValueError):
        return f"killed by {signal.Signals(-code).name}"
    return f"killed by signal {-code}"


def _free_bytes(path: str) -> int | None:
    """Free bytes on ``path``'s file system (of the nearest folder that exists)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _flatten(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    name = type(exc).__name__ if isinstance(exc, errors.StoreError) else "StoreError"
    attrs = {k: v for k, v in vars(exc).items() if not isinstance(v, BaseException)}
    return name, str(exc), attrs


def _rebuild(name: str, message: str, attrs: dict[str, Any]) -> errors.StoreError:
    """The child's exception as the same type here, whatever its constructor takes."""
    cls = getattr(errors, name, errors.StoreError)
    if not (isinstance(cls, type) and issubclass(cls, errors.StoreError)):
        cls = errors.StoreError
    exc: errors.StoreError = cls.__new__(cls)
    Exception.__init__(exc, message)
    vars(exc).update(attrs)
    return exc


def serve(conn: Connection, data_dir: str, options: dict[str, Any]) -> None:
    """The child's loop: open the engine, then answer calls until told to close."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    from .edge import EdgeStore

    try:
        store = EdgeStore(data_dir, **options)
    except BaseException as exc:
        conn.send(("err", _flatten(exc)))
        return
    conn.send(("ok", None))
    while True:
        try:
            method, args, kwargs = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            store.close()
            return
        try:
            conn.send(("ok", getattr(store, method)(*args, **kwargs)))
        except BaseException as exc:
            conn.send(("err", _flatten(exc)))
        if method == "close":
            return


class ProcessStore(ContextManagerMixin):
    """An EdgeStore in a child process, behind the same VectorStore interface."""

    def __init__(self, data_dir: str, **options: Any) -> None:
        self._data_dir = str(data_dir)
        self._options = options
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        with self._lock:
            self._start()

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> None:
        if self._process is not None and self._alive():  # a child we lost contact with
            self._process.kill()
            self._process.wait()
        # A fresh interpreter (not multiprocessing's spawn), so the parent's main module is
        # never re-imported in the child.
        parent_sock, child_sock = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])
        # An empty entry would be the working folder.
        paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        command = [
            sys.executable,
            "-P",  # the working folder not searched first: an embedserve.py there would win
            "-m",
            f"{__package__}._store_worker",
            str(child_sock.fileno()),
            self._data_dir,
            json.dumps(self._options),
        ]
        process = subprocess.Popen(command, pass_fds=[child_sock.fileno()], env=env)
        child_sock.close()
        parent = Connection(parent_sock.detach())
        if not parent.poll(_START_TIMEOUT_S):
            process.kill()
            raise errors.TransientStoreError("the store process did not start in time")
        self._process = process
        try:
            status, value = parent.recv()
        except EOFError:
            raise self._death("while starting") from None
        if status != "ok":
            process.wait(5)
            raise _rebuild(*value)
        self._conn, self._process = parent, process

    def _death(self, when: str) -> errors.StoreError:
        """Why the child died, as the error to raise. The engine maps its files, so writing
        to a full file system kills it with SIGBUS instead of returning an error."""
        code = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(1)  # a dying child exits as its pipe closes
        how = exit_description(code)
        free = _free_bytes(self._data_dir)
        if free is not None and free < LOW_SPACE_BYTES:
            return errors.StoreFull(
                f"the store process died {when} ({how}): the file system of the data "
                f"directory {self._data_dir!r} is full ({free // 1024} KiB free). Free space "
                "there or give the server another --data-dir; acknowledged writes are kept"
            )
        return errors.TransientStoreError(f"the store process exited {when} ({how})")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._closed:
                raise errors.StoreClosed()
            if self._conn is None or not self._alive():
                self._start()
            assert self._conn is not None
            try:
                self._conn.send((method, args, kwargs))
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._conn = None
                raise self._death(f"during {method}") from exc
        if status == "err":
            raise _rebuild(*value)
        return value

    def create_collection(self, spec: CollectionSpec) -> None:
        self._call("create_collection", spec)

    def list_collections(self) -> list[str]:
        result: list[str] = self._call("list_collections")
        return result

    def get_collection(self, name: str) -> CollectionInfo:
        result: CollectionInfo = self._call("get_collection", name)
        return result

    def delete_collection(self, name: str) -> None:
        self._call("delete_collection", name)

    def update_collection(self, name: str, update: CollectionUpdate) -> None:
        self._call("update_collection", name, update)

    def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        self._call("update_aliases", dict(assign), list(remove))

    def list_aliases(self) -> dict[str, str]:
        result: dict[str, str] = self._call("list_aliases")
        return result

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        self._call("upsert", collection, list(points))

    def search(
        self,
        collection: str,
        vector: VectorLike | None,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        *,
        keywords: SparseTerms | None = None,
    ) -> list[ScoredPoint]:
        result: list[ScoredPoint] = self._call(
            "search", collection, vector, filter, params, keywords=keywords
        )
        return result

    def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        strategy: RecommendStrategy = RecommendStrategy.AVERAGE_VECTOR,
        filter: Filter | None = None,
        params: SearchParams | None = None,
    ) -> list[ScoredPoint]:
        result: list[ScoredPoint] = self._call(
            "recommend", collection, list(positive), list(negative), strategy, filter, params
        )
        return result

    def retrieve(
        self, collection: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[Record]:
        result: list[Record] = self._call("retrieve", collection, list(ids), with_vectors)
        return result

    def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        self._call("delete", collection, None if ids is None else list(ids), filter)

    def update_payload(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: Filter | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        delete_keys: Sequence[str] = (),
    ) -> None:
        self._call(
            "update_payload",
            collection,
            None if ids is None else list(ids),
            filter,
            values=None if values is None else dict(values),
            delete_keys=list(delete_keys),
        )

    def facet(
        self, collection: str, key: str, filter: Filter | None = None, limit: int = 10
    ) -> list[FacetHit]:
        result: list[FacetHit] = self._call("facet", collection, key, filter, limit)
        return result

    def count(self, collection: str, filter: Filter | None = None, exact: bool = True) -> int:
        result: int = self._call("count", collection, filter, exact)
        return result

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> ScrollPage:
        result: ScrollPage = self._call(
            "scroll", collection, filter, limit, cursor, with_payload, with_vectors
        )
        return result

    def scroll_by_value(
        self,
        collection: str,
        order: ScrollOrder,
        start_from: OrderValue | None,
        limit: int,
        filter: Filter | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[tuple[Record, OrderValue]]:
        result: list[tuple[Record, OrderValue]] = self._call(
            "scroll_by_value",
            collection,
            order,
            start_from,
            limit,
            filter,
            with_payload,
            with_vectors,
        )
        return result

    def optimize(self, collection: str) -> bool:
        result: bool = self._call("optimize", collection)
        return result

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._conn is not None and self._alive():
                try:
                    self._conn.send(("close", (), {}))
                    self._conn.recv()
                except (EOFError, OSError):
                    pass
            if self._process is not None:
                try:
                    self._process.wait(30)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
