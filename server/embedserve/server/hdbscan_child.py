"""HDBSCAN in a child process for large inputs.

sklearn's HDBSCAN holds the interpreter lock for nearly all of its run (18 s of 19 on
60,000 points on 2 cores): in the server's process every other call, health checks
included, waited that long, and the run could not be stopped when its caller left. A
child process runs it beside the server and is killed at the caller's checkpoint.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import numpy as np
import numpy.typing as npt
from sklearn.cluster import HDBSCAN

from embedserve.connectors.process import exit_description
from embedserve.server.errors import AnalysisFailed
from embedserve.server.stoppable import Checkpoint, never_stopped

# Below this many points HDBSCAN takes well under a second in-process (about 0.1 s at
# 5,000), less than starting a child that imports sklearn.
IN_PROCESS_BELOW = 5_000
# How often the parent asks whether its caller is still there.
POLL_S = 0.2


def hdbscan_labels(
    points: npt.NDArray[np.float64],
    min_cluster_size: int,
    checkpoint: Checkpoint = never_stopped,
    in_process_below: int = IN_PROCESS_BELOW,
) -> npt.NDArray[np.int64]:
    """HDBSCAN's label of each row (-1: noise), computed in a child process for
    ``in_process_below`` rows or more."""
    rows = np.ascontiguousarray(points, dtype=np.float64)
    if len(rows) < in_process_below:
        return _fit(rows, min_cluster_size)
    # -P: the server's working folder is not searched first (an embedserve.py there
    # would take the package's place).
    command = [sys.executable, "-P", "-m", __name__, *map(str, (*rows.shape, min_cluster_size))]
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    answer: list[bytes] = []
    # communicate() takes its input in one call only, so it runs whole on a thread of its
    # own while this one checks on the caller.
    talker = threading.Thread(target=lambda: answer.extend(child.communicate(rows.tobytes())))
    talker.start()
    try:
        while talker.is_alive():
            talker.join(POLL_S)
            checkpoint()
    finally:
        if child.poll() is None:
            child.kill()  # the caller has gone: communicate() then meets the end of output
        talker.join()
    out, err = answer
    if child.returncode != 0:
        raise AnalysisFailed(f"HDBSCAN's child process failed: {_why(child.returncode, err)}")
    return np.frombuffer(out, dtype=np.int64).copy()


def _why(code: int, err: bytes) -> str:
    if code < 0:  # SIGKILL is what the kernel sends when memory runs out
        return exit_description(code) + (" (out of memory?)" if code == -signal.SIGKILL else "")
    last = err.decode(errors="replace").strip().splitlines()[-1:]
    return last[0] if last else exit_description(code)


def _fit(rows: npt.NDArray[np.float64], min_cluster_size: int) -> npt.NDArray[np.int64]:
    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(rows)
    if labels.max() < 0:
        # HDBSCAN picks its tree's root only when told to, so copies of one point among
        # noise, the root's one dense part, were noise too. Copies are a cluster of their
        # own; a denser core of points that only differ is not taken (on unstructured
        # points the root's is a handful of them), nor the root as all the points.
        single = HDBSCAN(min_cluster_size=min_cluster_size, copy=True, allow_single_cluster=True)
        one = np.asarray(single.fit_predict(rows)) == 0
        if one.any() and not one.all() and len(np.unique(rows[one], axis=0)) == 1:
            labels = np.where(one, 0, -1)
    return np.asarray(labels, dtype=np.int64)


def _main(argv: list[str]) -> None:
    count, dims, min_cluster_size = map(int, argv)
    rows = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float64).reshape(count, dims)
    sys.stdout.buffer.write(_fit(rows, min_cluster_size).tobytes())


if __name__ == "__main__":
    _main(sys.argv[1:])
