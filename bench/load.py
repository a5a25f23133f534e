"""Bounded load test: many concurrent gRPC clients against one server, with its memory watched.

Starts ``embedserve serve --model minilm`` on a free loopback port with a private data
folder (or loads an already running server with ``--target``), then for ``--duration``
seconds runs ``--clients`` concurrent clients on grpc.aio in this one process:

- unary clients: ``EmbeddingService/Embed`` with 1 to 8 short texts per call;
- stream clients (``--stream-share``): ``EmbedStream`` bidirectional streams of requests of
  1 to 4 texts, up to ``--stream-depth`` outstanding, each response timed from its send; a
  stream sends for ``--stream-lifetime`` seconds, then half-closes and is reopened, so its
  deadline can be ``--stream-lifetime`` + ``--deadline``;
- search clients (``--search-share``): ``VectorService/Search`` by text in a small
  collection created and filled before the clock starts.

Texts come from a seeded RNG, so two runs send the same mix. Every call has a deadline
(``--deadline``); failures are counted by status code, and RESOURCE_EXHAUSTED backs off by
the server's ``retry-after-ms`` trailer. The server's RSS (and, separately, that of its
child processes, the embedded vector store) is sampled every second. At the end the
clients stop sending, in-flight calls finish (bounded by the deadline), and the server gets
SIGTERM (SIGKILL after 30 s).

Exit status 0 when there were no errors other than RESOURCE_EXHAUSTED and the server's RSS
at the end is within 10% of its RSS at 10 s; 1 otherwise (the report is written anyway).
Those are two single samples of a saw-toothing RSS; the report adds the ratio of the
floors (lowest samples) of the last 20 s and of 5-15 s, which tells growth from phase.

    .venv/bin/python bench/load.py [--clients 200] [--duration 60] [--stream-share 0.25]
        [--search-share 0.1] [--target HOST:PORT [--pid PID]]
        [--json bench/results/load.json] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from embedding_throughput import cpu_model, make_corpus, portable, replace_section
from vector_store import free_port

from embedserve.client import EmbedClient
from embedserve.client._sync import CHANNEL_OPTIONS
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

REPO = Path(__file__).resolve().parents[1]
TITLE = "Load: concurrent clients, latency and memory (CPU)"
RSS_RATIO_LIMIT = 1.10
KINDS = ("unary", "stream", "search")
# Client-side outcomes that are not gRPC status codes.
BAD_RESPONSE = "BAD_RESPONSE"  # wrong number of vectors, wrong width, stream out of order
UNFINISHED = "UNFINISHED"  # still running when the drain bound ran out: a deadline not kept


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- server process and its memory ------------------------------------------------------------


class Server:
    """``embedserve serve`` in a subprocess, its log kept in the work folder.

    It runs the sources of this checkout (first on ``PYTHONPATH``), whichever checkout the
    interpreter was installed from, so two checkouts can be measured with one virtualenv.
    """

    def __init__(self, work: Path, extra: Sequence[str]) -> None:
        self.target = f"127.0.0.1:{free_port()}"
        self.log_path = work / "server.log"
        roots = [str(REPO / root) for root in ("server", "connectors", "clients/python")]
        env = dict(
            os.environ,
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            EMBEDSERVE_HTTP_PORT="0",  # gRPC only: benches may run side by side
            PYTHONPATH=os.pathsep.join([*roots, os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        )
        command = [
            sys.executable,
            "-m",
            "embedserve.server.cli",
            "serve",
            "--model",
            "minilm",
            "--port",
            self.target.rsplit(":", 1)[1],
            "--data-dir",
            str(work / "data"),
            *extra,
        ]
        self.command = command
        with self.log_path.open("wb") as sink:
            self.process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
        self.pid = self.process.pid

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with EmbedClient(self.target) as client:
            # Short waits in a loop, so a server that dies while loading fails fast.
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode} before SERVING:\n"
                        + self.log_tail()
                    )
                try:
                    client.wait_until_serving(timeout=2)
                    return
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise

    def stop(self, kill_after: float = 30.0) -> dict[str, Any]:
        started = time.monotonic()
        killed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(kill_after)
            except subprocess.TimeoutExpired:
                killed = True
                self.process.kill()
                self.process.wait(10)
        return {
            "exit_code": self.process.returncode,
            "stop_seconds": round(time.monotonic() - started, 2),
            "killed_after_sigterm": killed,
        }

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return portable("\n".join(text.splitlines()[-lines:]))

    def log_problems(self) -> dict[str, Any]:
        """Lines of the server's own log that point at a server-side problem."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        flagged = [
            line
            for line in text
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]
        warnings = [line for line in text if " WARNING " in line]
        return {
            "lines": len(text),
            "error_lines": len(flagged),
            "warning_lines": len(warnings),
            "first_errors": [portable(line)[:300] for line in flagged[:10]],
            "first_warnings": [portable(line)[:300] for line in warnings[:5]],
        }


def read_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return 0  # a zombie has no VmRSS line


def cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Child processes, recursively; each thread keeps its own ``children`` list."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


@dataclass
class RssSample:
    t: float  # seconds since the load started (negative: before)
    server_kb: int
    children_kb: int
    children: int
    server_cpu_s: float
    children_cpu_s: float


def sample_rss(pid: int, t: float) -> RssSample | None:
    server = read_rss_kb(pid)
    if server is None:
        return None
    kids = descendants(pid)
    return RssSample(
        t=round(t, 2),
        server_kb=server,
        children_kb=sum(read_rss_kb(k) or 0 for k in kids),
        children=len(kids),
        server_cpu_s=cpu_seconds(pid) or 0.0,
        children_cpu_s=sum(cpu_seconds(k) or 0.0 for k in kids),
    )


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # Calls and texts completed inside the window (throughput), and after it (the drain).
    calls: Counter[str] = field(default_factory=Counter)
    texts: Counter[str] = field(default_factory=Counter)
    drained: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    errors_by_kind: dict[str, Counter[str]] = field(
        default_factory=lambda: {k: Counter() for k in KINDS}
    )
    first_messages: dict[str, str] = field(default_factory=dict)
    # The server's own account of each call (Timings): where client-side latency went.
    server_ms: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {k: {"queue": [], "inference": [], "total": []} for k in KINDS}
    )
    retry_hints: int = 0
    streams_opened: int = 0

    def ok(self, kind: str, started: float, texts: int, end: float) -> None:
        now = time.monotonic()
        self.latencies_ms[kind].append((now - started) * 1000.0)
        if now <= end:
            self.calls[kind] += 1
            self.texts[kind] += texts
        else:
            self.drained[kind] += 1

    def timings(self, kind: str, timings: epb.Timings) -> None:
        self.server_ms[kind]["queue"].append(timings.queue_ms)
        self.server_ms[kind]["inference"].append(timings.inference_ms)
        self.server_ms[kind]["total"].append(timings.total_ms)

    def error(self, kind: str, code: str, message: str = "") -> None:
        self.errors[code] += 1
        self.errors_by_kind[kind][code] += 1
        if code not in self.first_messages:
            self.first_messages[code] = f"{kind}: {message}"[:300]


@dataclass
class Load:
    args: argparse.Namespace
    texts: list[str]
    collection: str
    end: float  # monotonic time at which clients stop sending
    stats: Stats = field(default_factory=Stats)


def pick(rng: random.Random, texts: list[str], low: int, high: int) -> list[str]:
    return [rng.choice(texts) for _ in range(rng.randint(low, high))]


def retry_after_s(error: grpc.aio.AioRpcError) -> float | None:
    with contextlib.suppress(Exception):
        for key, value in error.trailing_metadata() or ():
            if key == "retry-after-ms":
                return float(value) / 1000.0
    return None


async def back_off(load: Load, kind: str, error: grpc.aio.AioRpcError, attempt: int) -> None:
    """Record a failed call and wait before the next one."""
    code = error.code().name
    load.stats.error(kind, code, error.details() or "")
    hint = retry_after_s(error) if code == "RESOURCE_EXHAUSTED" else None
    if hint is not None:
        load.stats.retry_hints += 1
        delay = hint * random.uniform(1.0, 1.1)  # a little jitter so retries do not line up
    else:
        # No hint (or another error): capped exponential back-off, so a failing server is
        # not hammered in a tight loop.
        delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
    await asyncio.sleep(max(0.0, min(delay, load.end - time.monotonic())))


async def unary_client(load: Load, channel: grpc.aio.Channel, index: int) -> None:
    stub = epb_grpc.EmbeddingServiceStub(channel)
    rng = random.Random(load.args.seed * 1_000_003 + index)
    attempt = 0
    while time.monotonic() < load.end:
        inputs = pick(rng, load.texts, 1, 8)
        started = time.monotonic()
        try:
            response = await stub.Embed(epb.EmbedRequest(inputs=inputs), timeout=load.args.deadline)
        except grpc.aio.AioRpcError as error:
            attempt += 1
            await back_off(load, "unary", error, attempt)
            continue
        attempt = 0
        if len(response.embeddings) != len(inputs) or response.dimensions != load.args.dim:
            load.stats.error("unary", BAD_RESPONSE, f"{len(response.embeddings)} vectors")
            continue
        load.stats.ok("unary", started, len(inputs), load.end)
        load.stats.timings("unary", response.timings)


async def search_client(load: Load, channel: grpc.aio.Channel, index: int) -> None:
    stub = vpb_grpc.VectorServiceStub(channel)
    rng = random.Random(load.args.seed * 1_000_003 + index)
    attempt = 0
    while time.monotonic() < load.end:
        query = " ".join(rng.choice(load.texts).split()[:8])
        request = vpb.SearchRequest(
            collection=load.collection, text=query, params=vpb.QueryParams(limit=10)
        )
        started = time.monotonic()
        try:
            response = await stub.Search(request, timeout=load.args.deadline)
        except grpc.aio.AioRpcError as error:
            attempt += 1
            await back_off(load, "search", error, attempt)
            continue
        attempt = 0
        if not response.results:
            load.stats.error("search", BAD_RESPONSE, "no hits in a non-empty collection")
            continue
        load.stats.ok("search", started, 1, load.end)
        load.stats.timings("search", response.timings)


async def one_stream(
    load: Load, stub: epb_grpc.EmbeddingServiceStub, rng: random.Random, lifetime: float
) -> None:
    """One EmbedStream: send for ``lifetime`` seconds, half-close, read the rest."""
    args = load.args
    # The deadline covers the whole stream, so every stream ends by load.end + deadline.
    call = stub.EmbedStream(timeout=lifetime + args.deadline)
    load.stats.streams_opened += 1
    stop_sending = time.monotonic() + lifetime
    window = asyncio.Semaphore(args.stream_depth)
    sent: dict[str, tuple[float, int]] = {}
    order: list[str] = []

    async def writer() -> None:
        number = 0
        try:
            while True:
                left = stop_sending - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(window.acquire(), timeout=left)
                except TimeoutError:
                    break
                inputs = pick(rng, load.texts, 1, 4)
                request_id = str(number)
                number += 1
                sent[request_id] = (time.monotonic(), len(inputs))
                order.append(request_id)
                await call.write(epb.EmbedStreamRequest(request_id=request_id, inputs=inputs))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the stream failed; the reader reports how

    writing = asyncio.create_task(writer())
    expected = 0
    try:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                break
            request_id = response.request_id
            if expected >= len(order) or request_id != order[expected] or request_id not in sent:
                load.stats.error("stream", BAD_RESPONSE, f"out of order: {request_id!r}")
                break
            expected += 1
            started, count = sent.pop(request_id)
            window.release()
            if len(response.embeddings) != count or response.dimensions != args.dim:
                load.stats.error("stream", BAD_RESPONSE, f"{len(response.embeddings)} vectors")
                continue
            load.stats.ok("stream", started, count, load.end)
            load.stats.timings("stream", response.timings)
        code = await call.code()
        if code != grpc.StatusCode.OK:
            load.stats.error("stream", code.name, await call.details() or "")
        elif sent:
            load.stats.error("stream", BAD_RESPONSE, f"{len(sent)} requests without response")
    except grpc.aio.AioRpcError as error:
        load.stats.error("stream", error.code().name, error.details() or "")
        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            hint = retry_after_s(error) or 0.1
            await asyncio.sleep(max(0.0, min(hint, load.end - time.monotonic())))
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        call.cancel()


async def stream_client(load: Load, channel: grpc.aio.Channel, index: int) -> None:
    stub = epb_grpc.EmbeddingServiceStub(channel)
    rng = random.Random(load.args.seed * 1_000_003 + index)
    while (left := load.end - time.monotonic()) > 0:
        await one_stream(load, stub, rng, min(load.args.stream_lifetime, left))


def open_channels(target: str, count: int) -> list[grpc.aio.Channel]:
    # Channels with equal arguments share one connection in gRPC core (the global subchannel
    # pool); a local pool gives each channel its own HTTP/2 connection.
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(target, options=options) for _ in range(count)]


async def prepare_collection(
    channel: grpc.aio.Channel, name: str, docs: int, texts: list[str], deadline: float
) -> float:
    """Create and fill the search collection before the clock starts; returns seconds."""
    stub = vpb_grpc.VectorServiceStub(channel)

    async def patiently(call: Any, request: Any, timeout: float) -> None:
        # A rate-limited server refuses setup calls too; they wait as the server asks.
        for _ in range(100):
            try:
                await call(request, timeout=timeout)
                return
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                await asyncio.sleep(retry_after_s(error) or 0.2)
        raise RuntimeError("setup call still refused after 100 tries")

    started = time.monotonic()
    await patiently(stub.CreateCollection, vpb.CreateCollectionRequest(name=name), deadline)
    for start in range(0, docs, 100):
        documents = [
            vpb.Document(id=f"d{i}", text=texts[i % len(texts)])
            for i in range(start, min(docs, start + 100))
        ]
        # 100 documents embed in about a second on 2 idle cores; allow for a busy machine.
        request = vpb.UpsertRequest(collection=name, documents=documents)
        await patiently(stub.Upsert, request, deadline * 4)
    return time.monotonic() - started


async def run_load(
    args: argparse.Namespace, target: str, pid: int | None, texts: list[str]
) -> dict[str, Any]:
    counts = client_counts(args)
    channel_count = math.ceil(args.clients / args.calls_per_channel)
    channels = open_channels(target, channel_count)
    setup = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    collection = f"load-{os.getpid()}-{int(time.time())}"
    samples: list[RssSample] = []
    marks: dict[str, RssSample | None] = {}
    lag_ms: list[float] = []
    loadavg_before = round(os.getloadavg()[0], 2)
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        ingest_s = 0.0
        if counts["search"]:
            ingest_s = await prepare_collection(
                setup, collection, args.search_docs, texts, args.deadline
            )
            log(f"collection {collection}: {args.search_docs} documents in {ingest_s:.1f} s")
        begin = time.monotonic()
        load = Load(args=args, texts=texts, collection=collection, end=begin + args.duration)
        if pid is not None:
            marks["before"] = sample_rss(pid, 0.0)

        async def sampler() -> None:
            # Every second on the loop's own clock; the overrun is the client loop's lag,
            # which shows when the load generator itself is the bottleneck.
            tick = begin
            while True:
                tick += 1.0
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
                lag_ms.append(max(0.0, (time.monotonic() - tick) * 1000.0))
                if pid is not None and (sample := sample_rss(pid, time.monotonic() - begin)):
                    samples.append(sample)

        sampling = asyncio.create_task(sampler())
        cpu_before = os.times()
        tasks: list[asyncio.Task[None]] = []
        kinds = ["stream"] * counts["stream"] + ["search"] * counts["search"]
        kinds += ["unary"] * counts["unary"]
        runners = {"unary": unary_client, "stream": stream_client, "search": search_client}
        for index, kind in enumerate(kinds):
            channel = channels[index % channel_count]
            tasks.append(asyncio.create_task(runners[kind](load, channel, index)))
        log(
            f"{args.clients} clients ({counts['unary']} unary, {counts['stream']} stream, "
            f"{counts['search']} search) on {channel_count} connections for {args.duration} s"
        )
        await asyncio.sleep(max(0.0, load.end - time.monotonic()))
        if pid is not None:
            marks["end"] = sample_rss(pid, time.monotonic() - begin)
        log("window over; draining in-flight calls")
        drain_started = time.monotonic()
        # Every call's deadline ends by load.end + deadline; the margin is for the client.
        _, pending = await asyncio.wait(tasks, timeout=args.deadline + 5.0)
        drain_s = time.monotonic() - drain_started
        for task, kind in zip(tasks, kinds, strict=True):
            if task in pending:
                task.cancel()
                load.stats.error(kind, UNFINISHED, "client still running after the drain bound")
            elif task.exception() is not None:
                load.stats.error(kind, "CLIENT_EXCEPTION", repr(task.exception()))
        cpu_after = os.times()
        sampling.cancel()
        if pid is not None:
            marks["after_drain"] = sample_rss(pid, time.monotonic() - begin)
        if counts["search"]:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await vpb_grpc.VectorServiceStub(setup).DeleteCollection(
                    vpb.DeleteCollectionRequest(name=collection), timeout=args.deadline
                )
    finally:
        for channel in [*channels, setup]:
            await channel.close()
    stats = load.stats
    return {
        "clients": counts,
        "connections": channel_count,
        "collection_ingest_s": round(ingest_s, 2),
        "drain_s": round(drain_s, 2),
        "streams_opened": stats.streams_opened,
        "client_cpu_s": round(
            (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system), 2
        ),
        "client_loop_lag_ms": {
            "p50": round(float(np.percentile(lag_ms, 50)), 1) if lag_ms else None,
            "max": round(max(lag_ms), 1) if lag_ms else None,
        },
        "stats": stats,
        "loadavg_before": loadavg_before,
        "loadavg_after": round(os.getloadavg()[0], 2),
        "samples": samples,
        "marks": marks,
    }


def client_counts(args: argparse.Namespace) -> dict[str, int]:
    stream = round(args.clients * args.stream_share)
    search = min(round(args.clients * args.search_share), args.clients - stream)
    return {"unary": args.clients - stream - search, "stream": stream, "search": search}


# -- report -------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    p50, p90, p99 = np.percentile(np.asarray(values), [50, 90, 99])
    return {"p50_ms": round(p50, 1), "p90_ms": round(p90, 1), "p99_ms": round(p99, 1)}


def memory_report(
    samples: list[RssSample], marks: dict[str, RssSample | None], reference_s: float
) -> dict[str, Any] | None:
    end = marks.get("end")
    if end is None:
        return None
    # The first sample at or after the reference time; in a run shorter than that, the end.
    in_window = [s for s in samples if s.t < end.t]
    at_ref = next((s for s in in_window if s.t >= reference_s - 0.5), end)
    series = [s for s in [*samples, *marks.values()] if s is not None]
    before, after = marks.get("before"), marks.get("after_drain")
    out: dict[str, Any] = {"reference_s": at_ref.t, "end_s": end.t}

    def floor_kb(kb: str, low: float, high: float) -> int | None:
        values = [getattr(s, kb) for s in in_window if low <= s.t <= high]
        return min(values) if len(values) >= 5 else None

    for part in ("server", "children"):
        kb = f"{part}_kb"
        ref_kb, end_kb = getattr(at_ref, kb), getattr(end, kb)
        # Under load the server's RSS saw-tooths by 10-25% (glibc's allocator keeps freed
        # activation memory, then trims it every few seconds), so one sample against
        # another depends on the phase. The floor (the
        # lowest sample) of the last 20 s against that of 10 s around the reference tells
        # growth from the saw-tooth. Informational: the check uses the two samples.
        ref_floor = floor_kb(kb, reference_s - 5, reference_s + 5)
        end_floor = floor_kb(kb, end.t - 20, end.t)
        floors = end_floor / ref_floor if ref_floor and end_floor else None
        out[part] = {
            "before_load_mb": round(getattr(before, kb) / 1024, 1) if before else None,
            "at_reference_mb": round(ref_kb / 1024, 1),
            "end_mb": round(end_kb / 1024, 1),
            "after_drain_mb": round(getattr(after, kb) / 1024, 1) if after else None,
            "peak_mb": round(max(getattr(s, kb) for s in series) / 1024, 1),
            "ratio_end_to_reference": round(end_kb / ref_kb, 3) if ref_kb else None,
            "ratio_floor_last_20s_to_floor_at_reference": round(floors, 3) if floors else None,
        }
    out["children"]["processes"] = end.children
    if before is not None:
        seconds = max(end.t - before.t, 1e-9)
        out["server"]["cpu_cores_used"] = round(
            (end.server_cpu_s - before.server_cpu_s) / seconds, 2
        )
        out["children"]["cpu_cores_used"] = round(
            (end.children_cpu_s - before.children_cpu_s) / seconds, 2
        )
    out["series"] = [[s.t, s.server_kb, s.children_kb] for s in samples]
    return out


def build_report(
    args: argparse.Namespace, run: dict[str, Any], server: dict[str, Any] | None
) -> dict[str, Any]:
    stats: Stats = run["stats"]
    duration = args.duration
    per_kind: dict[str, Any] = {}
    for kind in KINDS:
        if not run["clients"][kind]:
            continue
        per_kind[kind] = {
            "clients": run["clients"][kind],
            "calls": stats.calls[kind],
            "calls_after_window": stats.drained[kind],
            "texts": stats.texts[kind],
            "calls_per_s": round(stats.calls[kind] / duration, 1),
            "texts_per_s": round(stats.texts[kind] / duration, 1),
            **percentiles(stats.latencies_ms[kind]),
            "server_p50_ms": {
                part: round(float(np.median(values)), 1) if values else None
                for part, values in stats.server_ms[kind].items()
            },
            "errors": dict(stats.errors_by_kind[kind]),
        }
    calls = sum(stats.calls.values())
    texts = sum(stats.texts.values())
    hard_errors = {code: n for code, n in stats.errors.items() if code != "RESOURCE_EXHAUSTED"}
    memory = memory_report(run["samples"], run["marks"], args.rss_reference_s)
    ratio = memory["server"]["ratio_end_to_reference"] if memory else None
    checks = {
        "no_errors_but_resource_exhausted": not hard_errors,
        "rss_ratio_within_10_percent": None if ratio is None else ratio <= RSS_RATIO_LIMIT,
    }
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            # Other work on the machine skews every figure; the load average shows it.
            "load_average_1m": {"before": run["loadavg_before"], "after": run["loadavg_after"]},
        },
        "settings": {
            "server": "external (--target)" if args.target else "embedserve serve --model minilm",
            "server_args": args.server_arg,
            # glibc allocator tuning inherited by the server (it changes its RSS profile).
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            "label": args.label,
            "clients": args.clients,
            "duration_s": duration,
            "stream_share": args.stream_share,
            "search_share": args.search_share,
            "stream_depth": args.stream_depth,
            "stream_lifetime_s": args.stream_lifetime,
            "search_docs": args.search_docs,
            "deadline_s": args.deadline,
            "calls_per_connection": args.calls_per_channel,
            "connections": run["connections"],
            "seed": args.seed,
            "texts_per_unary_call": "1-8",
            "texts_per_stream_request": "1-4",
        },
        "totals": {
            "calls": calls,
            "calls_after_window": sum(stats.drained.values()),
            "texts": texts,
            "calls_per_s": round(calls / duration, 1),
            "texts_per_s": round(texts / duration, 1),
            "errors": dict(stats.errors),
            "error_examples": stats.first_messages,
            "retry_after_hints": stats.retry_hints,
            "streams_opened": run["streams_opened"],
            "drain_s": run["drain_s"],
            "collection_ingest_s": run["collection_ingest_s"],
        },
        "per_kind": per_kind,
        "memory": memory,
        "client": {"cpu_s": run["client_cpu_s"], "loop_lag_ms": run["client_loop_lag_ms"]},
        "server": server,
        "checks": checks,
        "passed": checks["no_errors_but_resource_exhausted"]
        and checks["rss_ratio_within_10_percent"] is not False,
    }


def cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def section_title(label: str) -> str:
    return f"{TITLE}, {label}" if label else TITLE


def markdown(report: dict[str, Any]) -> str:
    settings, totals, machine = report["settings"], report["totals"], report["machine"]
    memory, server = report["memory"], report["server"] or {}
    errors = ", ".join(f"{k} {v}" for k, v in sorted(totals["errors"].items())) or "none"
    rows = [
        f"## {section_title(settings['label'])}",
        "",
        f"Measured {report['date']} on {machine['cpu']}, {machine['cores']} cores (1-minute "
        f"load average {machine['load_average_1m']['before']} before the load, "
        f"{machine['load_average_1m']['after']} after); "
        f"{settings['server']}"
        + "".join(f", {k}={v}" for k, v in settings["malloc_env"].items())
        + ", load generator in the same machine (grpc.aio, one process). "
        f"`bench/load.py`: {settings['clients']} clients for {settings['duration_s']} s on "
        f"{settings['connections']} connections; unary Embed of 1-8 short texts, EmbedStream "
        f"(share {settings['stream_share']}, requests of 1-4 texts, {settings['stream_depth']} "
        f"outstanding, reopened every {settings['stream_lifetime_s']} s), Search by text "
        f"(share {settings['search_share']}, {settings['search_docs']} documents); deadline "
        f"{settings['deadline_s']} s per call.",
        "",
        "| kind | clients | calls | calls/s | texts/s | p50 ms | p90 ms | p99 ms "
        "| server p50 ms: queue / model / total | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, part in report["per_kind"].items():
        kind_errors = ", ".join(f"{k} {v}" for k, v in sorted(part["errors"].items())) or "0"
        own = part["server_p50_ms"]
        rows.append(
            f"| {kind} | {part['clients']} | {part['calls']} | {cell(part['calls_per_s'])} | "
            f"{cell(part['texts_per_s'])} | {cell(part['p50_ms'])} | {cell(part['p90_ms'])} | "
            f"{cell(part['p99_ms'])} | {cell(own['queue'])} / {cell(own['inference'])} / "
            f"{cell(own['total'])} | {kind_errors} |"
        )
    rows.append(
        f"| **all** | {settings['clients']} | {totals['calls']} | {cell(totals['calls_per_s'])} "
        f"| {cell(totals['texts_per_s'])} | | | | | {errors} |"
    )
    rows += [
        "",
        f"Calls counted inside the window; {totals['calls_after_window']} more finished in the "
        f"{totals['drain_s']:.1f} s drain (their latencies are included). "
        f"Load generator: {report['client']['cpu_s']:.1f} CPU s, event-loop lag p50 "
        f"{cell(report['client']['loop_lag_ms']['p50'])} ms, max "
        f"{cell(report['client']['loop_lag_ms']['max'])} ms.",
        "",
    ]
    if memory:
        ref = memory["reference_s"]
        ratio = memory["server"]["ratio_end_to_reference"]
        verdict = "met" if ratio is not None and ratio <= RSS_RATIO_LIMIT else "missed"
        rows += [
            f"| RSS MB | before load | at {ref:.0f} s | end ({memory['end_s']:.0f} s) "
            "| after drain | peak | end / at ref | floors: last 20 s / around ref "
            "| CPU cores used |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for part, label in (("server", "server process"), ("children", "child processes")):
            m = memory[part]
            label = f"{label} ({m['processes']})" if part == "children" else label
            rows.append(
                f"| {label} | {cell(m['before_load_mb'])} | {cell(m['at_reference_mb'])} | "
                f"{cell(m['end_mb'])} | {cell(m['after_drain_mb'])} | {cell(m['peak_mb'])} | "
                f"{cell(m['ratio_end_to_reference'], 3)} | "
                f"{cell(m['ratio_floor_last_20s_to_floor_at_reference'], 3)} | "
                f"{cell(m.get('cpu_cores_used'), 2)} |"
            )
        rows += ["", f"Server RSS end / at {ref:.0f} s <= {RSS_RATIO_LIMIT:.2f}: {verdict}."]
    else:
        rows.append("Server RSS not sampled (external server without --pid).")
    if server:
        problems = server.get("log", {})
        rows.append(
            f"Server stop: SIGTERM, exit code {server.get('exit_code')} after "
            f"{server.get('stop_seconds')} s"
            + (" (killed)" if server.get("killed_after_sigterm") else "")
            + f"; server log: {problems.get('error_lines', 0)} error lines, "
            f"{problems.get('warning_lines', 0)} warnings."
        )
    rows.append("")
    rows.append(f"Result: {'pass' if report['passed'] else 'FAIL'}.")
    return "\n".join(rows) + "\n"


# -- main ---------------------------------------------------------------------------------------


def short_texts(count: int, seed: int) -> list[str]:
    """Short texts of varying length (4 to 48 tokens), the same for a given seed."""
    return make_corpus(count, seed=seed, min_tokens=4, max_tokens=48)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--stream-share", type=float, default=0.25)
    parser.add_argument("--search-share", type=float, default=0.1)
    parser.add_argument(
        "--stream-depth", type=int, default=2, help="outstanding requests per stream"
    )
    parser.add_argument(
        "--stream-lifetime", type=float, default=10.0, help="seconds before a stream is reopened"
    )
    parser.add_argument("--search-docs", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds per call")
    parser.add_argument(
        "--calls-per-channel",
        type=int,
        default=50,
        help="clients sharing one connection (each has one call open at a time)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dim", type=int, default=384, help="expected vector width")
    parser.add_argument("--rss-reference-s", type=float, default=10.0)
    parser.add_argument("--target", default="", help="HOST:PORT of a running server")
    parser.add_argument("--pid", type=int, default=None, help="its pid, to sample its RSS")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for embedserve serve, e.g. --server-arg=--max-wait-ms=5",
    )
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--json", default=str(REPO / "bench/results/load.json"))
    parser.add_argument("--markdown", default="", help="file to write the section into")
    parser.add_argument(
        "--label", default="", help="appended to the section title, to keep several runs"
    )
    args = parser.parse_args(argv)
    if not 0 < args.calls_per_channel < 100:
        parser.error("--calls-per-channel must be between 1 and 99")
    if args.stream_share + args.search_share > 1 or min(args.stream_share, args.search_share) < 0:
        parser.error("--stream-share and --search-share must add up to at most 1")
    if args.clients < 1 or args.duration <= 0 or args.stream_depth < 1:
        parser.error("--clients, --duration and --stream-depth must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = short_texts(4096, args.seed)
    work = Path(tempfile.mkdtemp(prefix="embedserve-load-"))
    server: Server | None = None
    server_info: dict[str, Any] | None = None
    try:
        if args.target:
            target, pid = args.target, args.pid
        else:
            server = Server(work, args.server_arg)
            log(f"server pid {server.pid} on {server.target}; waiting for SERVING")
            server.wait_serving(args.start_timeout)
            target, pid = server.target, server.pid
        run = asyncio.run(run_load(args, target, pid, texts))
    finally:
        if server is not None:
            log("stopping the server (SIGTERM)")
            server_info = server.stop()
            server_info["log"] = server.log_problems()
            if server_info["exit_code"] != 0 or server_info["log"]["error_lines"]:
                log("server log tail:\n" + server.log_tail())
        shutil.rmtree(work, ignore_errors=True)
    report = build_report(args, run, server_info)
    text = markdown(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(portable(json.dumps(report, indent=2)) + "\n")
    if args.markdown:
        out = Path(args.markdown)
        out.parent.mkdir(parents=True, exist_ok=True)
        title = section_title(args.label)
        out.write_text(replace_section(out.read_text() if out.exists() else "", title, text))
    print(portable(text))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
