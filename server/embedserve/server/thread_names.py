"""OS-level names for the server's worker threads.

Python 3.11 names threads for itself only; the kernel still calls every thread after the
process. Named, ``top -H``, ``py-spy`` and ``/proc/<pid>/task/*/comm`` tell the model
thread from the tokenizer's, and threads a named thread starts later inherit its name:
torch's OpenMP workers, started by the model thread's first forward pass, read as
model threads too, so a thread's CPU time says which part of the server spent it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

_MAX_NAME = 15  # the kernel keeps 15 bytes of a thread's name


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel's view; a no-op where there is no /proc."""
    comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
    # Not Linux, or /proc read-only: the name is a convenience, never a failure.
    with contextlib.suppress(OSError):
        comm.write_text(name.encode("ascii", "replace")[:_MAX_NAME].decode("ascii"))


def namer(name: str) -> Callable[[], None]:
    """A ``ThreadPoolExecutor`` initializer naming each of the pool's threads ``name``."""
    return lambda: name_os_thread(name)
