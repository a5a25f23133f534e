"""What the command line writes: files whole or not at all, and stored documents as JSON
lines."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def replaced_when_done(
    path: str, binary: bool = False, newline: str | None = None
) -> Iterator[IO[Any]]:
    """A file written beside ``path`` (``path.partial``) and moved onto it once the block
    ends well: a run that fails or is interrupted half-way leaves the earlier file (an
    export's yesterday's backup, an ingestion's checkpoint) as it was, and no truncated one
    in its place. A symbolic link's target is replaced (the link stays); a FIFO, a device
    or a shell's ``>(...)`` is written as it is. A failed write names ``path``. ``newline``:
    as for ``open`` (``""`` for the csv module)."""
    mode, encoding = ("wb", None) if binary else ("w", "utf-8")
    opened = functools.partial(open, mode=mode, encoding=encoding, newline=newline)
    target = os.path.realpath(path)
    partial = f"{target}.partial"
    try:
        if is_stream(path):
            # Nothing earlier to keep, and a file put in its place would reach no reader.
            with opened(path) as f:
                yield f
            return
        try:
            kept_mode = _mode_of(target)
            with opened(partial) as f:
                if kept_mode is not None:  # a private file stays private, from the start
                    os.fchmod(f.fileno(), kept_mode)
                yield f
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            raise
    except OSError as exc:
        if exc.filename not in (None, path, target, partial):
            raise  # another file's error, raised by the block
        # A failed write names no file at all ("[Errno 27] File too large").
        raise type(exc)(f"cannot write {path}: {exc.strerror or exc}") from exc


def _mode_of(path: str) -> int | None:
    """The permission bits of the file at ``path``; None where there is none yet."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def replaced_together() -> Iterator[contextlib.ExitStack]:
    """Files entered as ``files.enter_context(replaced_when_done(...))`` are moved into
    place together once the block ends well, Ctrl-C and SIGTERM held back between the
    moves: a set of files (an export and its settings) never mixes two runs."""
    with contextlib.ExitStack() as files:
        yield files
        with _signals_held():
            files.close()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back for the block, then acted on as they would have been.
    (Blocking them would not do: a signal sent to the process reaches any thread that does
    not block it, grpc's too, and Python acts on it in the main thread at once.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; signals are acted on there
        return
    arrived: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.signal(number, lambda n, _: arrived.append(n)) for number in held}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
        for late in dict.fromkeys(arrived):
            signal.raise_signal(late)


def save_npy(path: str, array: np.ndarray[Any, Any]) -> None:
    """``array`` as a .npy file at ``path``, replaced when done."""
    with replaced_when_done(path, binary=True) as out:
        write_npy(out, array)


def write_npy(out: IO[bytes], array: np.ndarray[Any, Any]) -> None:
    # Through ``write``: numpy's own write to a file says only "N requested and M
    # written" when it fails, not why (a full disk).
    np.save(SimpleNamespace(write=out.write), array)


@contextlib.contextmanager
def text_output(path: str, newline: str | None = None) -> Iterator[IO[str]]:
    """Standard output for "-", else ``path`` replaced when done (``newline`` as there)."""
    if path == "-":
        yield sys.stdout
        return
    with replaced_when_done(path, newline=newline) as out:
        yield out


def output_name(path: str) -> str:
    """``path`` as a progress line names it."""
    return "standard output" if path == "-" else path


def is_stream(path: str) -> bool:
    """Whether ``path`` (its link followed) exists and is no regular file: a FIFO, a device,
    a shell's ``>(...)``."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # none yet: written beside and moved there
        return False


def document_line(doc: Any) -> str:
    """A stored document as one JSON line: id, vector (when fetched) and payload, the form
    ``ingest`` reads back."""
    line: dict[str, Any] = {"id": doc.id}
    if doc.vector is not None:
        line["vector"] = _shortest_floats(doc.vector)
    line["payload"] = doc.payload
    return json.dumps(line)


def _shortest_floats(vector: Any) -> list[float]:
    """Each float32 value as the shortest decimal that reads back as exactly it (rounding to
    7 decimals changed most values and made those below 5e-8 zero)."""
    return [float(text) for text in np.asarray(vector, dtype=np.float32).astype(str)]
