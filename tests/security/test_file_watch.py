"""The file watch of the keys file (and the certificate, which shares it): a change is put
in force, a file that becomes unreadable is said in the log once, its keys kept, and a
reload that fails unexpectedly leaves the watch running."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from embedserve.server.auth import AuthSettings, load_keys
from embedserve.server.file_watch import WatchedFiles
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


class _FailsOnce(WatchedFiles):
    """A loader with a bug on its first reload: a fault no real file can cause now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded: list[str] = []
        super().__init__([str(path)], interval_s=0.01)

    def _load(self) -> bool:
        content = self.path.read_text()
        if not self.loaded and content == "second":
            self.loaded.append("(failed)")
            raise RuntimeError("a bug in the loader")
        self.loaded.append(content)
        return True


def test_a_reload_that_raises_leaves_the_watch_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("first")
    files = _FailsOnce(path)

    async def change_twice() -> None:
        watch = asyncio.create_task(files.watch())
        for reloads, content in enumerate(("second", "third"), start=1):
            path.write_text(content)
            while len(files.loaded) < reloads:
                await asyncio.sleep(0.01)
        watch.cancel()

    caplog.set_level(logging.ERROR, logger="embedserve.server.file_watch")
    asyncio.run(asyncio.wait_for(change_twice(), 10))
    assert files.loaded == ["(failed)", "third"]
    assert f"reloading {path} failed" in caplog.text
    assert "a bug in the loader" in caplog.text
