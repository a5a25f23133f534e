"""Analysis work on a worker thread stops at its next step once its caller has gone: a
Cluster or FindDuplicates abandoned after a second ran on for seconds of CPU."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from embedserve.server.analysis_cluster import ClusterSettings, cluster_vectors
from embedserve.server.analysis_duplicates import PairCollector, compare_in_blocks
from embedserve.server.stoppable import Checkpoint, WorkStopped, until_cancelled


def test_the_thread_stops_at_its_next_checkpoint_once_the_caller_is_cancelled() -> None:
    steps: list[int] = []

    def work(checkpoint: Checkpoint) -> int:
        for step in range(500):
            checkpoint()
            steps.append(step)
            time.sleep(0.01)
        return len(steps)

    async def body() -> None:
        assert await until_cancelled(lambda checkpoint: 7) == 7
        task = asyncio.create_task(until_cancelled(work))
        while len(steps) < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = len(steps)
        await asyncio.sleep(0.3)  # thirty steps' time
        assert len(steps) <= at_cancel + 1

    asyncio.run(body())


def stop_at(calls: int) -> tuple[Checkpoint, list[None]]:
    made: list[None] = []

    def checkpoint() -> None:
        made.append(None)
        if len(made) == calls:
            raise WorkStopped

    return checkpoint, made


def test_clustering_and_duplicate_blocks_check_between_their_steps() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    checkpoint, made = stop_at(3)
    with pytest.raises(WorkStopped):
        cluster_vectors(x, ClusterSettings(k_min=2, k_max=8), checkpoint)
    assert len(made) == 3  # the second k-means run was not started
    checkpoint, made = stop_at(2)
    ids = [str(i) for i in range(len(x))]
    collector = PairCollector(threshold=0.9)
    with pytest.raises(WorkStopped):
        compare_in_blocks(ids, x, collector, 3, rows=64, checkpoint=checkpoint)
    assert len(made) == 2  # at the second block of rows, of five
