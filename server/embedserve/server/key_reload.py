"""API keys reloaded while serving: on SIGHUP, and when the keys file changes.

A key can then be added, revoked or rotated without a restart (a Kubernetes Secret mounted
as the keys file changes in place). A file that cannot be read or parsed, or that holds no
key (which would turn auth off), leaves the keys in force as they were, and says why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from embedserve.server.auth import AuthSettings, KeyRing, load_keys
from embedserve.server.errors import EmbedServeError

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 5.0


class KeyReloader:
    def __init__(
        self, settings: AuthSettings, ring: KeyRing, interval_s: float = WATCH_INTERVAL_S
    ) -> None:
        self._settings = settings
        self._ring = ring
        self._interval_s = interval_s
        self._seen = self._fingerprint()

    def _fingerprint(self) -> bytes | None:
        try:
            return hashlib.sha256(Path(self._settings.api_keys_file).read_bytes()).digest()
        except OSError:
            return None

    def reload(self) -> bool:
        """Load the keys again; True when the new set is in force."""
        self._seen = self._fingerprint()
        kept = len(self._ring)
        try:
            fresh = load_keys(self._settings)
        except EmbedServeError as exc:
            log.error("API keys not reloaded, the %d in force kept: %s", kept, exc.message)
            return False
        if not len(fresh):
            log.error(
                "API keys not reloaded: the file holds none, which would turn auth off; "
                "the %d in force kept",
                kept,
            )
            return False
        self._ring.replace(fresh)
        log.info("API keys reloaded: %d in force (%d before)", len(fresh), kept)
        return True

    async def watch(self) -> None:
        """Reload whenever the file's content changes (checked every ``interval_s``)."""
        while True:
            await asyncio.sleep(self._interval_s)
            seen = await asyncio.to_thread(self._fingerprint)
            if seen is not None and seen != self._seen:
                self.reload()
