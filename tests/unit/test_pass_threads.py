"""Side-by-side passes on a CPU: how many by default, and the real model run from two threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedserve.server.pass_threads import on_threads, side_passes
from embedserve.server.tokenization import Overflow
from embedserve.server.windows import Window


@pytest.mark.parametrize(
    ("requested", "device", "backend", "threads", "expected"),
    [
        (0, "cpu", "torch", 2, 2),
        (0, "cpu", "torch-int8", 4, 2),
        (0, "cpu", "torch", 1, 1),  # one core: nothing to share
        (0, "cpu", "onnx", 2, 1),  # ONNX Runtime has one thread pool per session
        (0, "cpu", "onnx-int8", 2, 1),
        (0, "cuda", "torch", 2, 1),
        (3, "cpu", "torch", 2, 3),  # asked for: honoured
        (1, "cpu", "torch", 8, 1),
    ],
)
def test_side_passes_default(requested, device, backend, threads, expected) -> None:
    assert side_passes(requested, device, backend, threads) == expected


def test_passes_side_by_side_give_the_vectors_of_one_pass(minilm_model) -> None:
    texts = [f"text {i} about " + "cooking and travel " * (i % 7) for i in range(24)]
    encoded = minilm_model.tokenizer.encode(texts, "", Overflow.TRUNCATE_RIGHT)
    windows = [Window(t.windows[0], t.pool_start) for t in encoded]
    expected = np.stack(minilm_model.compute(windows))

    narrow = on_threads(minilm_model.compute, 1)
    with ThreadPoolExecutor(2) as pool:
        halves = [pool.submit(narrow, windows[i::2]) for i in range(2)]
        got = [h.result() for h in halves]
    merged = np.empty_like(expected)
    merged[0::2], merged[1::2] = np.stack(got[0]), np.stack(got[1])
    np.testing.assert_allclose(merged, expected, atol=1e-5)
