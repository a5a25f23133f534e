"""What one forward pass costs: a fixed part per pass plus a part per padded token.

The batcher uses this line to pick batch sizes that maximise real tokens per
second: on a CPU a pass of MiniLM costs about 13 ms before the first token
(bench/model_batch_cost.py), so a batch of a few short texts spends most of its
time on that fixed part, while a long input padded onto short ones wastes the
per-token part. ``calibrate`` fits the line from a few small timed passes at
warm-up.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from embedserve.server.windows import Encoder, Window

log = logging.getLogger(__name__)

# (count, length) of the timed passes: small, so warm-up stays short even for large
# models, but spread over padded sizes (16 to 512 tokens) so both terms are visible.
CALIBRATION_SHAPES: tuple[tuple[int, int], ...] = ((1, 16), (8, 32), (4, 128))
# A GPU pass costs the same from 16 to thousands of tokens (launching its kernels
# takes longer than running them: 16 to 18 ms for modernbert-embed-large's shape on
# an H200), so the small shapes fit no per-token cost; these reach 16,384 tokens.
GPU_CALIBRATION_SHAPES: tuple[tuple[int, int], ...] = ((1, 16), (16, 256), (32, 512))
# A pass whose fixed part is at most this share of its cost counts as efficient.
EFFICIENT_FIXED_SHARE = 0.10


@dataclasses.dataclass(frozen=True)
class PassCost:
    """seconds(pass) = fixed_s + per_token_s x padded tokens."""

    fixed_s: float
    per_token_s: float

    def seconds(self, padded_tokens: int) -> float:
        return self.fixed_s + self.per_token_s * padded_tokens

    def rate(self, real_tokens: int, padded_tokens: int) -> float:
        """Real tokens per second of one pass."""
        return real_tokens / self.seconds(padded_tokens)

    @property
    def efficient_tokens(self) -> int:
        """Padded tokens from which the fixed part is a small share of a pass."""
        if self.per_token_s <= 0:
            return 0
        share = EFFICIENT_FIXED_SHARE
        return int(self.fixed_s * (1 - share) / (share * self.per_token_s))


def fit(samples: Sequence[tuple[int, float]]) -> PassCost:
    """Least-squares line through (padded tokens, seconds); both terms kept >= 0."""
    n = len(samples)
    if n < 2:
        raise ValueError("need at least two timed passes to fit a cost line")
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in samples)
    if var_x == 0:
        raise ValueError("the timed passes need different padded sizes")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / var_x
    slope = max(slope, 0.0)
    fixed = max(mean_y - slope * mean_x, 0.0)
    return PassCost(fixed_s=fixed, per_token_s=slope)


def calibrate(
    compute: Callable[[Sequence[Window]], object],
    token_pool: Sequence[int],
    max_length: int,
    rounds: int = 3,
    shapes: Sequence[tuple[int, int]] = CALIBRATION_SHAPES,
    clock: Callable[[], float] = time.perf_counter,
    attempts: int = 3,
    stop: threading.Event | None = None,
) -> PassCost | None:
    """Time ``rounds`` passes per shape (fastest kept: noise only adds) and fit the line.

    Each shape first gets one untimed pass, since the first pass at a new shape also
    pays for allocating its buffers. A stall on a busy machine can still tilt the line
    so that one term fits to zero; then every shape is timed again, keeping the fastest
    pass of all attempts, up to ``attempts`` times; if none fits both terms, there is no
    line (None), and the batcher keeps to its padding share. Rows are random draws from
    ``token_pool``, so that no two rows are equal (the model computes identical
    sequences once); lengths are capped at ``max_length``. Once ``stop`` is set (the
    server shuts down during its warm-up) no more passes run: CalibrationStopped.
    """
    rng = random.Random(0)

    def timed_pass(windows: Sequence[Window]) -> float:
        if stop is not None and stop.is_set():
            raise CalibrationStopped("the server is shutting down")
        started = clock()
        compute(windows)
        return clock() - started

    def rows(count: int, length: int) -> list[Window]:
        return [Window(tuple(rng.choices(token_pool, k=length))) for _ in range(count)]

    sized = [(count, min(length, max_length)) for count, length in shapes]
    for count, length in sized:
        timed_pass(rows(count, length))
    best = [float("inf")] * len(sized)
    for _ in range(attempts):
        for index, (count, length) in enumerate(sized):
            for _ in range(rounds):
                best[index] = min(best[index], timed_pass(rows(count, length)))
        cost = fit(
            [
                (count * length, seconds)
                for (count, length), seconds in zip(sized, best, strict=True)
            ]
        )
        if cost.fixed_s > 0 and cost.per_token_s > 0:
            return cost
        log.warning("pass-cost calibration disturbed: %s", cost)
    return None


CALIBRATION_TEXT = (
    "Calibration measures how long the encoder takes for batches of several shapes, "
    "from a single short text to a few long ones; 0123456789 vectors, queries and documents."
)


def shapes_for(device: object) -> tuple[tuple[int, int], ...]:
    """The calibration shapes for a model on ``device`` (``cpu``, ``cuda:0``, ...)."""
    return GPU_CALIBRATION_SHAPES if str(device).startswith("cuda") else CALIBRATION_SHAPES


# One calibration per loaded model, however many servers share it.
_calibrated: weakref.WeakKeyDictionary[Encoder, PassCost | None] = weakref.WeakKeyDictionary()


class CalibrationStopped(Exception):
    """A calibration left unfinished: the server is shutting down."""


def calibrate_model(model: Encoder, stop: threading.Event | None = None) -> PassCost | None:
    """Calibrate ``model`` on token ids of its own vocabulary; logs the fitted line."""
    from embedserve.server.tokenization import Overflow

    if model in _calibrated:
        return _calibrated[model]
    encoded = model.tokenizer.encode([CALIBRATION_TEXT], "", Overflow.TRUNCATE_RIGHT)
    pool = sorted(set(encoded[0].windows[0]))
    cost = calibrate_logged(
        model.compute, pool, model.spec.max_tokens, model.device, "forward", stop
    )
    _calibrated[model] = cost
    return cost


def calibrate_logged(
    compute: Callable[[Sequence[Window]], object],
    token_pool: Sequence[int],
    max_length: int,
    device: object,
    what: str,
    stop: threading.Event | None = None,
) -> PassCost | None:
    """``calibrate`` at the shapes for ``device``; logs the fitted line of the ``what`` pass."""
    cost = calibrate(compute, token_pool, max_length, shapes=shapes_for(device), stop=stop)
    if cost is None:
        log.warning("no %s pass-cost line fitted: batches are cut by the padding share", what)
    else:
        log.info(
            "%s pass cost: %.2f ms fixed + %.4f ms per padded token (efficient from %d tokens)",
            what,
            cost.fixed_s * 1000,
            cost.per_token_s * 1000,
            cost.efficient_tokens,
        )
    return cost
