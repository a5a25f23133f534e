"""Where exported ONNX models are kept, and how an entry is written so that no reader
ever sees half of one.

An entry is a folder named after what it was built from (the model folder's files, the
backend, the opset, the versions of ONNX Runtime, torch and transformers, the recipe):
any change makes a new name, so an entry is never stale, only unused. It is built in a
hidden staging folder next to it and renamed into place whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def cache_root(configured: str) -> Path:
    """``cache_dir`` when set, else ``$XDG_CACHE_HOME/embedserve`` or ``~/.cache/embedserve``."""
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "embedserve"


def folder_fingerprint(folder: Path) -> str:
    """The identity of a model folder's files: its path and each file's name, size and
    modification time (hashing gigabytes of weights at every start would cost seconds).
    Links are followed, as the Hugging Face cache's snapshots link to their blobs."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        stat = path.stat()
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def entry_name(label: str, parts: Iterable[str]) -> str:
    """A readable label and a short hash of everything the entry depends on."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"{label}-{digest}"


def build_once(entry: Path, build: Callable[[Path], None]) -> bool:
    """Make ``entry`` by ``build(staging folder)`` unless it exists; True if built now.

    A failed or interrupted build leaves no ``entry``: the staging folder is removed or,
    after a crash, left under a hidden name nobody reads. When another process renamed
    its own build into place first, that one is kept.
    """
    if entry.is_dir():
        return False
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        build(staging)
        try:
            staging.rename(entry)
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(staging)
            return False
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True
