"""HDBSCAN on many points runs in a child process: in the server's process it held the
interpreter lock for nearly all of its run (18 s of 19 on 60,000 points), and every other
call waited; the child is killed when the caller goes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.server import hdbscan_child
from embedserve.server.errors import AnalysisFailed
from embedserve.server.hdbscan_child import hdbscan_labels
from embedserve.server.stoppable import WorkStopped


def blobs(per_blob: int = 200) -> np.ndarray:
    rng = np.random.default_rng(3)
    centres = 4.0 * rng.standard_normal((4, 5))
    return np.vstack([c + 0.3 * rng.standard_normal((per_blob, 5)) for c in centres])


def test_the_child_gives_the_labels_hdbscan_gives_in_process() -> None:
    points = blobs()
    here = hdbscan_labels(points, 10)
    there = hdbscan_labels(points, 10, in_process_below=0)
    assert there.dtype == np.int64 and len(set(here.tolist()) - {-1}) == 4
    assert there.tolist() == here.tolist()


def record_children(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The child processes started from now on, as they are started."""
    started: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(hdbscan_child.subprocess, "Popen", Recorded)
    return started


def test_the_child_is_killed_when_the_caller_has_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    started = record_children(monkeypatch)

    def caller_gone() -> None:
        raise WorkStopped

    with pytest.raises(WorkStopped):
        hdbscan_labels(blobs(), 10, caller_gone, in_process_below=0)
    [child] = started
    assert child.returncode == -signal.SIGKILL  # stopped, not run to its end


def test_a_failing_child_is_named_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AnalysisFailed, match=r"HDBSCAN's child process failed: .*min_cluster_size"):
        hdbscan_labels(blobs(), 1, in_process_below=0)
    started = record_children(monkeypatch)

    def kill_as_the_kernel_does_when_memory_runs_out() -> None:
        if started[0].poll() is None:
            started[0].send_signal(signal.SIGKILL)

    with pytest.raises(AnalysisFailed, match=r"failed: killed by SIGKILL \(out of memory\?\)$"):
        hdbscan_labels(blobs(), 10, kill_as_the_kernel_does_when_memory_runs_out, 0)


def test_a_module_named_embedserve_in_the_working_folder_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` searched the working folder first: an embedserve.py there ran, and the
    child failed with "'embedserve' is not a package"."""
    (tmp_path / "embedserve.py").write_text("raise SystemExit('the wrong embedserve ran')\n")
    monkeypatch.chdir(tmp_path)
    points = blobs()
    assert (
        hdbscan_labels(points, 10, in_process_below=0).tolist()
        == hdbscan_labels(points, 10).tolist()
    )
