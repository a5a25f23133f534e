"""Dynamic batching: one owner task cuts padded-cost-bounded batches from a queue.

Requests of all clients are queued as windows (one per input or chunk), in one of
two lanes: interactive work (queries, unary embeds) and bulk work (ingestion,
embed streams). The owner waits briefly for company, then cuts a batch from a
length-sorted view of a lane's oldest ``sort_window`` windows, grown around one of
them so that similar lengths run together. Requests take turns to supply that
window (the one whose turn came longest ago, or never, supplies its oldest, brought
into the view if it waits past it): a short request queued behind large ones runs
within a pass or two, not after all of them.
The interactive lane goes first: a query that arrives during a large ingestion
waits for the pass running, not for the ingestion's queue; while bulk work waits,
every ``INTERACTIVE_BATCHES_PER_BULK + 1``-th batch is a bulk one, so that a
steady flow of queries slows an ingestion but never stops it.
With a calibrated ``PassCost`` the batch size is the one that maximises real
tokens per second (a fixed cost per pass favours company, padding costs per
token); without one, a batch stops growing at ``max_padding_share`` of
padding. The model runs on its own thread; tokenisation of later requests
proceeds on the event loop's executor meanwhile. Under load on a CPU, passes
run side by side (``SidePasses``), each on a share of the cores. Every window
has a future that is always resolved: with its vector, with the batch's
error, or with DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from embedserve.server.batch_cost import PassCost
from embedserve.server.errors import DeadlineExpired, EmbedServeError, InferenceFailed, Overloaded
from embedserve.server.metrics import BatchMetrics
from embedserve.server.windows import FloatArray, Window

log = logging.getLogger(__name__)

ComputeFn = Callable[[Sequence[Window]], list[FloatArray]]


class Priority(enum.IntEnum):
    """The lane a window waits in; lower values run first."""

    INTERACTIVE = 0
    BULK = 1


INTERACTIVE_BATCHES_PER_BULK = 4

# Padded token budgets per batch when max_batch_tokens is 0: on a CPU larger batches run
# slower per token (bench/model_batch_cost.py).
GPU_BATCH_TOKENS = 16384
CPU_BATCH_TOKENS = 2048


@dataclasses.dataclass(frozen=True)
class BatchLimits:
    """The batching section of the settings."""

    # Padded cost (longest input x count) of one batch; 0: picked for the device by
    # ``for_device`` (GPU_BATCH_TOKENS on a GPU, CPU_BATCH_TOKENS on a CPU).
    max_batch_tokens: int = 0
    max_batch_size: int = 256
    max_wait_ms: float = 2.0  # wait for company when the model is idle and the batch small
    max_queue_items: int = 100_000  # per lane
    sort_window: int = 2048  # queued inputs considered together when cutting a batch
    # Without a calibrated pass cost, a batch stops growing past this share of padding.
    max_padding_share: float = 0.10
    # Time a few passes at warm-up and size batches by that cost (fixed per pass + per
    # token); max_padding_share then applies only if calibration is off.
    calibrate_batches: bool = True
    # Under load, passes that may run side by side, each on an equal share of the CPU
    # threads; 0: picked for the model (2 for torch on a CPU with 2 or more threads, else 1).
    parallel_passes: int = 0

    def for_device(self, device_type: str) -> BatchLimits:
        """These limits with an automatic token budget (0) replaced by the device's."""
        if self.max_batch_tokens:
            return self
        budget = GPU_BATCH_TOKENS if device_type == "cuda" else CPU_BATCH_TOKENS
        return dataclasses.replace(self, max_batch_tokens=budget)


@dataclasses.dataclass(frozen=True)
class SidePasses:
    """Narrow passes for busy times: ``compute`` on ``executor``, up to ``passes`` at once.

    While work waits, narrow passes side by side beat one wide pass: a wide pass's
    threads wait for each other at every operation, and the small batches of many
    one-text clients give them little to share.
    """

    compute: ComputeFn
    executor: Executor
    passes: int


@dataclasses.dataclass(frozen=True)
class WindowResult:
    vector: FloatArray
    queue_s: float
    inference_s: float


@dataclasses.dataclass(eq=False)
class _Request:
    """The windows of one submit call, which take their turn together."""

    queued: int  # of its windows still in the lane
    # The number of the last cut that grew around one of them; -1: none yet.
    last_turn: int = -1


@dataclasses.dataclass(eq=False)
class _Pending:
    window: Window
    future: asyncio.Future[WindowResult]
    enqueued: float
    deadline: float | None
    request: _Request

    @property
    def cost(self) -> int:
        return len(self.window.ids)


class Batcher:
    def __init__(
        self,
        compute: ComputeFn,
        limits: BatchLimits,
        executor: Executor,
        metrics: BatchMetrics,
        cost: PassCost | None = None,
        side: SidePasses | None = None,
    ) -> None:
        if limits.max_batch_tokens < 1:
            raise ValueError(
                f"max_batch_tokens must be at least 1, got {limits.max_batch_tokens} "
                "(0, the automatic budget, is resolved by BatchLimits.for_device)"
            )
        self._compute = compute
        self.limits = limits
        self.cost = cost
        self._executor = executor
        self._metrics = metrics
        self._lanes = {lane: collections.deque[_Pending]() for lane in Priority}
        # Requests with windows in each lane, oldest first (a dict for its order).
        self._requests: dict[Priority, dict[_Request, None]] = {lane: {} for lane in Priority}
        self._lane_costs = dict.fromkeys(Priority, 0)
        # Interactive batches cut in a row while bulk work waited.
        self._interactive_run = 0
        self._cuts = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._side = side if side is not None and side.passes > 1 else None
        # Batches cut from the queue and not yet answered (stop waits for them too).
        self._running: set[asyncio.Task[None]] = set()
        self._wide_running = False
        self._pass_ended = asyncio.Event()
        # The last pass ended with work waiting or beside another: the next runs narrow.
        self._busy = False
        # stop() was called: what is queued runs without waiting for company.
        self._stopping = False

    @property
    def queued(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Finish what is queued and the batch the model is running, then stop the owner
        task: cancelling it mid-batch would leave that batch's callers waiting forever.

        Windows whose callers gave up (a cancelled warm-up's) are dropped, and the owner
        stops waiting for company: with them counted, or a batch held back for up to
        ``max_wait_ms``, a shutdown waited that long, whatever its grace period."""
        self._stopping = True
        for priority in Priority:
            self._drop_given_up(priority)
        self._arrived.set()  # wakes a wait for company, which now ends at once
        while self.queued or self._running:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def submit(
        self,
        windows: Sequence[Window],
        deadline: float | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> list[asyncio.Future[WindowResult]]:
        """Queue windows at once or raise Overloaded (unary calls). A call of more windows
        than the queue holds goes in when the queue is empty, as a stream's does: refused
        for ever, it would never be served."""
        if not self._has_room(priority, len(windows)):
            # The wait in the message too, as a rate limit's: not every client reads
            # trailing metadata (the Go client's calls do not).
            wait_ms = self._drain_estimate_ms()
            raise Overloaded(
                f"the server's queue is full ({len(self._lanes[priority])} inputs waiting; "
                f"max_queue_items is {self.limits.max_queue_items}); retry in {wait_ms} ms",
                wait_ms,
            )
        return self._enqueue(windows, deadline, priority)

    async def submit_when_room(
        self,
        windows: Sequence[Window],
        deadline: float | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> list[asyncio.Future[WindowResult]]:
        """Queue windows, waiting for room first (streams: backpressure)."""
        async with self._room:
            await self._room.wait_for(lambda: self._has_room(priority, len(windows)))
        return self._enqueue(windows, deadline, priority)

    def _drain_estimate_ms(self) -> int:
        """About how long the windows queued take to run, as a retry hint: the calibrated
        cost of their tokens in passes of max_batch_tokens; 1 s without a calibration."""
        if self.cost is None:
            return 1000
        tokens = sum(self._lane_costs.values())
        passes = -(-tokens // self.limits.max_batch_tokens)
        seconds = passes * self.cost.fixed_s + tokens * self.cost.per_token_s
        return max(1, math.ceil(seconds * 1000))

    def _has_room(self, priority: Priority, count: int) -> bool:
        """Room in the lane for ``count`` windows (all of them when the lane is empty).
        Windows whose callers gave up, cancelled or past their deadline, take none: they
        are dropped here rather than at the next cut, which waits for the pass running."""
        wanted = min(count, self.limits.max_queue_items)
        if len(self._lanes[priority]) + wanted > self.limits.max_queue_items:
            self._drop_given_up(priority)
        return len(self._lanes[priority]) + wanted <= self.limits.max_queue_items

    def _drop_given_up(self, priority: Priority) -> None:
        lane, now = self._lanes[priority], time.monotonic()
        kept: list[_Pending] = []
        for item in lane:
            if self._given_up(item, now):
                self._left(priority, item)
            else:
                kept.append(item)
        if len(kept) == len(lane):
            return
        lane.clear()
        lane.extend(kept)
        self._lane_costs[priority] = sum(item.cost for item in kept)
        self._report_depth()

    def _left(self, priority: Priority, item: _Pending) -> None:
        """``item`` left its lane for good (cut into a batch, or dropped)."""
        request = item.request
        request.queued -= 1
        if not request.queued:
            del self._requests[priority][request]

    @staticmethod
    def _given_up(item: _Pending, now: float) -> bool:
        """Cancelled by its caller, or expired (then failed, as a cut fails it)."""
        if item.future.done():
            return True
        if item.deadline is not None and now >= item.deadline:
            item.future.set_exception(DeadlineExpired("deadline expired while queued"))
            return True
        return False

    def _enqueue(
        self, windows: Sequence[Window], deadline: float | None, priority: Priority
    ) -> list[asyncio.Future[WindowResult]]:
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        futures: list[asyncio.Future[WindowResult]] = []
        lane = self._lanes[priority]
        request = _Request(len(windows))
        if windows:  # one without any would never leave the lane's requests
            self._requests[priority][request] = None
        for window in windows:
            future: asyncio.Future[WindowResult] = loop.create_future()
            lane.append(_Pending(window, future, now, deadline, request))
            self._lane_costs[priority] += len(window.ids)
            futures.append(future)
        self._report_depth()
        self._arrived.set()
        return futures

    async def _run(self) -> None:
        while True:
            try:
                await self._wait_for_slot()
                await self._wait_for_work()
                batch = self._cut()
                if batch:
                    self._launch(batch)
                await self._notify_room()
            except asyncio.CancelledError:
                raise
            except Exception:  # the owner must never die: log and go on
                log.exception("batcher loop error")

    def _slot_free(self) -> bool:
        """Nothing runs, or only narrow passes and fewer than allowed."""
        if not self._running:
            return True
        side = self._side
        return side is not None and not self._wide_running and len(self._running) < side.passes

    async def _wait_for_slot(self) -> None:
        while not self._slot_free():
            self._pass_ended.clear()
            await self._pass_ended.wait()

    def _launch(self, batch: list[_Pending]) -> None:
        # Alone and without a backlog a pass takes every thread (the latency of one
        # request); otherwise it runs narrow, so that the next batch can start beside it.
        narrow = self._side is not None and bool(self._running or self._busy or self.queued)
        self._wide_running = not narrow
        task = asyncio.get_running_loop().create_task(self._execute(batch, narrow))
        self._running.add(task)
        task.add_done_callback(self._pass_done)

    def _pass_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not self._running:
            self._wide_running = False
        self._busy = bool(self.queued or self._running)
        self._pass_ended.set()

    async def _wait_for_work(self) -> None:
        idle = not self.queued and not self._running
        while not self.queued:
            self._arrived.clear()
            await self._arrived.wait()
        # Idle model: give concurrent callers up to max_wait_ms to join. Busy model (work
        # queued while the last pass ran): callers keep arriving, so wait while they do
        # (each arrival within max_wait_ms of the last), up to one pass's fixed cost:
        # never more than a pass of its own would have cost.
        gap = self.limits.max_wait_ms / 1000.0
        started = time.monotonic()
        budget = gap if idle or self.cost is None else max(gap, self.cost.fixed_s)
        while not self._stopping and not self._has_full_batch():
            remaining = min(started + budget, time.monotonic() + gap) - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                # asyncio.timeout, not wait_for: no task made per arrival.
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                break

    def _has_full_batch(self) -> bool:
        limits = self.limits
        lane = self._next_lane()
        if len(self._lanes[lane]) >= limits.max_batch_size:
            return True
        enough = limits.max_batch_tokens
        if self.cost is not None:
            enough = min(enough, self.cost.efficient_tokens)
        return self._lane_costs[lane] >= enough

    def _next_lane(self) -> Priority:
        """Interactive work first, except that bulk work waiting gets every
        ``INTERACTIVE_BATCHES_PER_BULK + 1``-th batch."""
        interactive, bulk = self._lanes[Priority.INTERACTIVE], self._lanes[Priority.BULK]
        if interactive and not (bulk and self._interactive_run >= INTERACTIVE_BATCHES_PER_BULK):
            return Priority.INTERACTIVE
        return Priority.BULK if bulk else Priority.INTERACTIVE

    def _cut(self) -> list[_Pending]:
        """Take a batch around the next lane's window whose turn it is; put the rest back
        in front."""
        priority = self._next_lane()
        bulk_waits = bool(self._lanes[Priority.BULK])
        self._interactive_run = (
            self._interactive_run + 1 if priority is Priority.INTERACTIVE and bulk_waits else 0
        )
        queue = self._lanes[priority]
        now = time.monotonic()
        live: list[_Pending] = []
        while queue and len(live) < self.limits.sort_window:
            item = queue.popleft()
            self._lane_costs[priority] -= item.cost
            if self._given_up(item, now):
                self._left(priority, item)
            else:
                live.append(item)
        anchor = self._turn(priority, live, now) if live else None
        # Cancelled and expired windows left the lane too: the gauge says so now, not at
        # the next arrival (an idle server would report them waiting for good).
        if anchor is None:
            self._report_depth()
            return []
        chosen = set(self._choose(live, anchor))
        batch = [live[i] for i in sorted(chosen)]
        for item in batch:
            self._left(priority, item)
        # Put the rest back at the front, oldest first, ahead of newer arrivals.
        rest = [live[i] for i in range(len(live)) if i not in chosen]
        queue.extendleft(reversed(rest))
        self._lane_costs[priority] += sum(item.cost for item in rest)
        self._report_depth()
        lane = priority.name.lower()
        self._metrics.lane_batches.labels(lane).inc()
        waited = self._metrics.lane_wait.labels(lane)
        for item in batch:
            waited.observe(now - item.enqueued)
        return batch

    def _turn(self, priority: Priority, live: list[_Pending], now: float) -> int | None:
        """The index in ``live`` of the window the batch grows around: the oldest of the
        request whose turn came longest ago (never, first; of those, the earliest). One
        queued past ``live`` (the view of ``sort_window`` windows) is moved into it."""
        queue, requests = self._lanes[priority], self._requests[priority]
        while requests:
            request = min(requests, key=lambda r: r.last_turn)
            anchor = next((i for i, item in enumerate(live) if item.request is request), None)
            if anchor is None:
                place = next(i for i, item in enumerate(queue) if item.request is request)
                item = queue[place]
                del queue[place]
                self._lane_costs[priority] -= item.cost
                if self._given_up(item, now):
                    self._left(priority, item)
                    continue
                live.append(item)
                anchor = len(live) - 1
            request.last_turn = self._cuts
            self._cuts += 1
            return anchor
        return None

    def _choose(self, live: list[_Pending], anchor: int) -> list[int]:
        """Indices into ``live`` (oldest first) of the batch to run next.

        The batch grows around ``live[anchor]`` in length order, each step adding
        the neighbour that adds the least padding, within the hard caps. With a
        pass cost, the step with the most real tokens per second wins (ties: the
        larger batch); without one, growth stops at ``max_padding_share``.
        """
        limits = self.limits
        order = sorted(range(len(live)), key=lambda i: live[i].cost)
        lo = hi = order.index(anchor)
        longest = total = live[anchor].cost
        best, best_rate = (lo, hi), self._rate(total, longest)
        while hi - lo + 1 < limits.max_batch_size:
            count = hi - lo + 1
            options: list[tuple[int, int, int]] = []  # (added waste, new lo, new hi)
            if lo > 0:
                cost = live[order[lo - 1]].cost
                options.append((longest - cost, lo - 1, hi))
            if hi + 1 < len(order):
                cost = live[order[hi + 1]].cost
                options.append((count * (cost - longest), lo, hi + 1))
            if not options:
                break
            _, new_lo, new_hi = min(options)
            added = live[order[new_lo if new_lo != lo else new_hi]]
            new_longest = max(longest, added.cost)
            padded = (count + 1) * new_longest
            if padded > limits.max_batch_tokens:
                break
            waste = padded - total - added.cost
            if self.cost is None and count >= 2 and waste > limits.max_padding_share * padded:
                break
            lo, hi, longest, total = new_lo, new_hi, new_longest, total + added.cost
            rate = self._rate(total, padded)
            if rate >= best_rate:
                best, best_rate = (lo, hi), rate
        if self.cost is None:
            best = (lo, hi)
        return order[best[0] : best[1] + 1]

    def _rate(self, real_tokens: int, padded_tokens: int) -> float:
        return 0.0 if self.cost is None else self.cost.rate(real_tokens, padded_tokens)

    async def _execute(self, batch: list[_Pending], narrow: bool) -> None:
        try:
            await self._answer(batch, narrow)
        finally:
            await self._notify_room()

    async def _answer(self, batch: list[_Pending], narrow: bool) -> None:
        started = time.monotonic()
        windows = [item.window for item in batch]
        compute, executor = self._compute, self._executor
        if narrow and self._side is not None:
            compute, executor = self._side.compute, self._side.executor
        try:
            loop = asyncio.get_running_loop()
            vectors = await loop.run_in_executor(executor, compute, windows)
        except EmbedServeError as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            log.exception("model failure on a batch of %d", len(batch))
            self._fail(batch, InferenceFailed(f"the model failed on this batch: {exc}"))
            return
        if len(vectors) != len(batch):
            # Zipping would leave some callers waiting forever: fail the whole batch instead.
            log.error("the model returned %d vectors for a batch of %d", len(vectors), len(batch))
            self._fail(
                batch,
                InferenceFailed(
                    f"the model returned {len(vectors)} vectors for {len(batch)} inputs"
                ),
            )
            return
        finished = time.monotonic()
        self._metrics.observe_batch(
            size=len(batch),
            real_tokens=sum(item.cost for item in batch),
            padded_tokens=len(batch) * max(item.cost for item in batch),
            seconds=finished - started,
        )
        for item, vector in zip(batch, vectors, strict=True):
            if not item.future.done():
                item.future.set_result(
                    WindowResult(vector, started - item.enqueued, finished - started)
                )

    def _report_depth(self) -> None:
        self._metrics.queue_depth.set(self.queued)
        for priority, lane in self._lanes.items():
            self._metrics.lane_depth.labels(priority.name.lower()).set(len(lane))

    @staticmethod
    def _fail(batch: list[_Pending], error: EmbedServeError) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)

    async def _notify_room(self) -> None:
        async with self._room:
            self._room.notify_all()
