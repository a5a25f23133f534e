"""API keys read again while serving (see file_watch): a key is added, revoked or rotated
without a restart. A file that cannot be read or parsed, or that holds no key (which would
turn auth off), leaves the keys in force as they were, and the log says why: ``load_keys``
refuses it, as it does at start."""

from __future__ import annotations

import logging
from collections.abc import Callable

from embedserve.server.auth import AuthSettings, KeyRing, load_keys
from embedserve.server.errors import EmbedServeError
from embedserve.server.file_watch import WatchedFiles

log = logging.getLogger(__name__)


class KeyReloader(WatchedFiles):
    def __init__(
        self, settings: AuthSettings, ring: KeyRing, record: Callable[[bool], None] | None = None
    ) -> None:
        self._settings = settings
        self._ring = ring
        super().__init__([settings.api_keys_file], record)

    def _load(self) -> bool:
        kept = len(self._ring)
        try:
            fresh = load_keys(self._settings)
        except EmbedServeError as exc:
            log.error("API keys not reloaded, the %d in force kept: %s", kept, exc.message)
            return False
        self._ring.replace(fresh)
        log.info("API keys reloaded: %d in force (%d before)", len(fresh), kept)
        return True
