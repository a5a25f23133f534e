"""Tasks a stream starts and may abandon when its caller goes away."""

from __future__ import annotations

import asyncio
from typing import Any


def discard(task: asyncio.Future[Any]) -> None:
    """Cancel a task whose result nobody will read, keeping its error out of the log
    (asyncio reports an exception never retrieved as an ERROR)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
