"""Side-by-side forward passes on a CPU: which to allow, and on how many threads each.

torch's CPU thread count is per OS thread (OpenMP's setting of the calling
thread, and MKL's), so passes on two executor threads can each use a share of
the cores. Every pass sets its own thread's count before it runs: a thread
that starts later takes the count set last by any thread, whichever that was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from embedserve.server.batcher import ComputeFn
from embedserve.server.windows import FloatArray, Window

# Backends whose CPU threads torch sets per calling thread; ONNX Runtime keeps one thread
# pool per session, so two passes there would run on each other's cores.
TORCH_BACKENDS = ("torch", "torch-int8")


def side_passes(requested: int, device_type: str, backend: str, threads: int) -> int:
    """Passes to run side by side: ``requested``, or for 0 the default for this model."""
    if requested > 0:
        return requested
    if device_type != "cpu" or backend not in TORCH_BACKENDS:
        return 1
    return 2 if threads >= 2 else 1


def narrow_threads(threads: int, passes: int) -> int:
    """Torch threads of each of ``passes`` side-by-side passes sharing ``threads``."""
    return max(1, threads // passes)


def on_threads(compute: ComputeFn, threads: int) -> ComputeFn:
    """``compute`` on ``threads`` torch threads of whichever thread calls it."""

    def run(windows: Sequence[Window]) -> list[FloatArray]:
        # A thread's first torch call adopts the process-wide count set last by any
        # thread; make that call first so the count set next is the one that sticks.
        torch.get_num_threads()
        torch.set_num_threads(threads)
        return compute(windows)

    return run
