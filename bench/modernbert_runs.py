"""Helpers shared by the ModernBERT path benchmarks (modernbert_long.py, gpu.py).

- ``load_paths``: one loaded model, run by transformers' forward pass (reference)
  and by the packed pass (fast), sharing the same weights;
- ``run_batcher``: windows through the server's own Batcher and model thread,
  as the server runs them, minus gRPC and tokenising;
- token windows of chosen lengths, a log-uniform mix of lengths, load readings.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def load_paths(folder: str, device: str, dtype: str = "auto") -> dict[str, Any]:
    """{"reference": EncoderModel, "fast": EncoderModel} over one set of weights."""
    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.modernbert_packed import PackedModernBert

    reference = EncoderModel.load(
        ModelSettings(model=folder, device=device, dtype=dtype, modernbert_path="reference")
    )
    fast = copy.copy(reference)
    fast._model = PackedModernBert(reference._model)
    return {"reference": reference, "fast": fast}


def token_windows(lengths: Sequence[int], seed: int, vocab: int = 30000) -> list[Any]:
    """Windows of random ids (past the special tokens) of exactly these lengths."""
    from embedserve.server.windows import Window

    rng = random.Random(seed)
    return [Window(tuple(rng.randrange(1000, vocab) for _ in range(n))) for n in lengths]


def log_uniform_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [round(math.exp(rng.uniform(math.log(low), math.log(high)))) for _ in range(count)]


def run_batcher(
    model: Any, windows: Sequence[Any], max_batch_tokens: int, cost: Any = None
) -> tuple[list[np.ndarray], float, int]:
    """(vectors in order, seconds, batches) for all windows queued at once.

    ``cost``: the pass cost the server calibrates at warm-up (``calibrate_model``);
    None cuts batches by the padding share, as with calibration off.
    """
    from embedserve.server.batcher import Batcher, BatchLimits
    from embedserve.server.metrics import Metrics

    async def go() -> tuple[list[np.ndarray], float, int]:
        metrics = Metrics()
        with ThreadPoolExecutor(1, thread_name_prefix="model") as executor:
            batcher = Batcher(
                model.compute,
                BatchLimits(max_batch_tokens=max_batch_tokens),
                executor,
                metrics,
                cost,
            )
            batcher.start()
            started = time.perf_counter()
            results = await asyncio.gather(*batcher.submit(windows))
            seconds = time.perf_counter() - started
            await batcher.stop()
        samples = metrics.batch_size.collect()[0].samples
        batches = int(next(s.value for s in samples if s.name.endswith("_count")))
        return [r.vector for r in results], seconds, batches

    return asyncio.run(go())


def min_cosine(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    worst = 1.0
    for x, y in zip(a, b, strict=True):
        x64, y64 = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        worst = min(worst, float(x64 @ y64 / (np.linalg.norm(x64) * np.linalg.norm(y64))))
    return worst


def load_average() -> float:
    """1-minute load average: the machine's other work shows up here."""
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except OSError:
        return float("nan")


def cores() -> int:
    return len(os.sched_getaffinity(0))
