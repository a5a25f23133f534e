"""The file watch of the keys file (and the certificate, which shares it): a change is put
in force, and a file that becomes unreadable is said in the log once, its keys kept."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from embedserve.server.auth import AuthSettings, load_keys
from embedserve.server.key_reload import KeyReloader


async def watch_for(reloader: KeyReloader, seconds: float) -> None:
    task = asyncio.create_task(reloader.watch())
    await asyncio.sleep(seconds)
    task.cancel()


def test_a_keys_file_removed_while_watched_is_logged_once_and_its_keys_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("first-key read\n")
    settings = AuthSettings(api_keys_file=str(keys))
    ring = load_keys(settings)
    outcomes: list[bool] = []
    reloader = KeyReloader(settings, ring, outcomes.append)
    reloader._interval_s = 0.02  # the server's is seconds
    caplog.set_level(logging.INFO, logger="embedserve.server.key_reload")

    keys.unlink()
    asyncio.run(watch_for(reloader, 0.3))
    assert outcomes == [False]  # once, not on every check
    assert caplog.text.count("cannot read api keys file") == 1
    assert len(ring) == 1 and ring.lookup("first-key") is not None

    keys.write_text("first-key read\nsecond-key write\n")
    asyncio.run(watch_for(reloader, 0.3))
    assert outcomes == [False, True]
    assert len(ring) == 2
