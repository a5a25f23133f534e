"""Files read again while serving: on SIGHUP, and when their content changes.

Kubernetes updates a mounted Secret in place, with no signal; the watch checks the
files' content every few seconds, so keys and certificates change without a restart.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 5.0


class WatchedFiles(abc.ABC):
    def __init__(
        self,
        paths: Sequence[str],
        record: Callable[[bool], None] | None = None,
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        """``record`` is told each reload's outcome (a metric)."""
        self._paths = list(paths)
        self._record = record
        self._interval_s = interval_s
        self._seen = self._fingerprint()

    def _fingerprint(self) -> bytes | None:
        """A digest of every file's content; None while one cannot be read."""
        digest = hashlib.sha256()
        try:
            for path in self._paths:
                digest.update(Path(path).read_bytes())
        except OSError:
            return None
        return digest.digest()

    @abc.abstractmethod
    def _load(self) -> bool:
        """Read the files and put them in force; False (logged) keeps what was in force."""

    def reload(self) -> bool:
        self._seen = self._fingerprint()
        applied = self._load()
        if self._record is not None:
            self._record(applied)
        return applied

    async def watch(self) -> None:
        """Reload whenever the files' content changes (checked every ``interval_s``). A file
        that becomes unreadable is reloaded once too, so the log says the one in force is kept."""
        while True:
            await asyncio.sleep(self._interval_s)
            seen = await asyncio.to_thread(self._fingerprint)
            if seen != self._seen:
                try:
                    self.reload()
                except Exception:  # logged here: the watch goes on, the next change counts
                    log.exception("reloading %s failed", ", ".join(self._paths))
