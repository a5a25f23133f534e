"""Progress lines on stderr, so stdout stays free for results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Progress = Callable[[str], None]


def stderr_progress() -> Progress:
    """Each line carries the seconds since the map started."""
    started = time.perf_counter()

    def report(message: str) -> None:
        print(
            f"map [{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True
        )

    return report
