"""The file watch outlives a reload that fails unexpectedly: the next change is read."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from embedserve.server.file_watch import WatchedFiles


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
