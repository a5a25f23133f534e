"""Long work on a worker thread that stops when its caller goes.

Cancelling the task that awaits ``asyncio.to_thread`` does not stop the thread: an
analysis whose client had left (a deadline, a closed connection) ran to its end, seconds of
CPU taken from every other caller, and ``asyncio.run`` waited for it at shutdown, past the
grace period. The work checks a flag between its steps instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# What the work calls between its steps: it raises WorkStopped once its caller has gone.
Checkpoint = Callable[[], None]


class WorkStopped(Exception):
    """Raised at a checkpoint of work whose caller has gone; nobody reads it."""


def never_stopped() -> None:
    """The checkpoint of work run directly, for a caller that stays."""


async def until_cancelled(work: Callable[..., T]) -> T:
    """``work(checkpoint=...)`` on a worker thread; when the awaiting task is cancelled,
    its next checkpoint raises, so the thread is free soon after."""
    stop = threading.Event()

    def checkpoint() -> None:
        if stop.is_set():
            raise WorkStopped

    try:
        return await asyncio.to_thread(work, checkpoint=checkpoint)
    except asyncio.CancelledError:
        stop.set()
        raise
