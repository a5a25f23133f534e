"""Peers: sentence-transformers, Infinity and embedserve on the same model and texts.

For each corpus (``short``: ~20 tokens per text, the shape of online search
traffic; ``mixed``: 5 to 300 tokens, log-uniform) and the packaged MiniLM:

- ``sentence-transformers``: ``encode(batch_size=64)`` of the whole corpus in this process, the
  offline reference;
- ``sentence-transformers`` again in bfloat16 (``--st-bfloat16``), the offline
  reference for a server that runs bfloat16;
- ``embedserve`` over gRPC (``bench/metrics_server.py`` in its own process),
  once per ``--backends`` entry (``BACKEND`` or ``BACKEND:DTYPE``; without a
  dtype the server picks its own, named in the row; a ``+compile`` suffix serves
  with ``torch_compile`` on; ``@NAME=VALUE`` suffixes set that server's settings,
  e.g. ``torch@bert_path=reference``, and are named in the row);
- ``Infinity`` (``infinity-emb``, HTTP, in its own virtualenv under
  ``--cache-dir``, created on first use; it runs offline from the model
  folder), once per ``--infinity-engines`` entry: ``torch``, ``torch-bf16`` (its
  torch engine with ``--dtype bfloat16``), ``torch-bf16-compile`` (that, with its
  ``--compile``: torch.compile), or ``optimum``
  (ONNX Runtime, on an ONNX export of the model made once under ``--cache-dir``;
  see ``bench/infinity_peer.py``); an engine that cannot be set up or started
  is listed under "Did not run" with the reason;

each server with two loads: one batching client (256 texts per request, 4
requests in flight) and 64 clients, each with its own connection, sending one
text per request and the next when the answer arrives. Every configuration
runs for ``--seconds`` after a short warm-up; texts/s, tokens/s (real tokens,
MiniLM's tokenizer, cut at 256) and per-request p50/p99 latency are reported,
for embedserve with its own counters (texts per forward pass, padding, passes
running at once: whether it waited on its model or on work), with ratios to
sentence-transformers and to the best Infinity engine, and ``/proc/loadavg``
before and after each configuration (the machine may be shared). The servers
are all up at once (idle, each used under 1% of a core), and each corpus and
load is measured on every server back to back, so a ratio compares windows
seconds apart: this machine's speed drifts over minutes.
``--runs N`` repeats the whole set N times, the servers' order reversed every
other run, and reports medians over the runs; ratios are taken within each run
before their median.

    .venv/bin/python bench/peers.py [--seconds 25] [--runs 1] [--backends torch,torch-int8]
        [--infinity-engines torch,optimum] [--out docs/benchmarks.md]
        [--json bench/results/peers.json] [--section TITLE]

``--backends ''`` or ``--infinity-engines ''`` leaves those servers out (sentence-transformers
always runs: it is the reference).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from embedding_throughput import (
    ServerProcess,
    machine_info,
    make_corpus,
    min_cosine,
    portable,
    replace_section,
    resolve_model,
    server_delta,
)
from infinity_peer import (
    ENGINE_REQUIREMENTS,
    INFINITY_VERSION,
    InfinityServer,
    SetupError,
    infinity_python,
    installed_versions,
    model_for,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SECTION = "Peers: sentence-transformers, Infinity, embedserve (CPU)"
CLIENTS = 64
BATCH_REQUEST = 256  # texts per request of the batching client
BATCH_INFLIGHT = 4
WARMUP_S = 3.0
COMPILED = "+compile"  # a --backends suffix: serve with torch_compile on
SETTING = "@"  # a --backends suffix: @NAME=VALUE sets one setting of that server


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# -- the measured loads --------------------------------------------------------------------------

# One request: texts in, one vector per text out.
EmbedFn = Callable[[list[str]], Awaitable[np.ndarray]]


class Tally:
    def __init__(self, tokens: dict[str, int]) -> None:
        self._tokens = tokens
        self.texts = 0
        self.token_sum = 0
        self.latencies: list[float] = []

    def add(self, texts: Sequence[str], seconds: float) -> None:
        self.texts += len(texts)
        self.token_sum += sum(self._tokens[t] for t in texts)
        self.latencies.append(seconds)

    def row(self, seconds: float, cpu_seconds: float) -> dict[str, Any]:
        """``cpu_seconds``: this process's CPU time over the same ``seconds`` (all threads)."""
        lat = sorted(self.latencies)
        return {
            "texts_per_s": self.texts / seconds,
            "bench_cores": cpu_seconds / seconds,
            "tokens_per_s": self.token_sum / seconds,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "requests": len(lat),
            "texts": self.texts,
            "seconds": seconds,
        }


async def drive(
    openers: Sequence[Callable[[], Awaitable[EmbedFn]]],
    texts: list[str],
    per_request: int,
    seconds: float,
    tally: Tally,
) -> tuple[float, float]:
    """Each worker sends the next ``per_request`` texts when its last answer is back.

    Returns the measured wall seconds and this process's CPU seconds over them: the
    clients' own share of the cores the servers run on."""
    embedders = [await open_one() for open_one in openers]
    position = 0

    def next_texts() -> list[str]:
        nonlocal position
        chunk = [texts[(position + i) % len(texts)] for i in range(per_request)]
        position += per_request
        return chunk

    async def worker(embed: EmbedFn, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            chunk = next_texts()
            sent = time.perf_counter()
            await embed(chunk)
            if record:
                tally.add(chunk, time.perf_counter() - sent)

    warm_until = time.perf_counter() + WARMUP_S
    await asyncio.gather(*(worker(e, warm_until, False) for e in embedders))
    started, cpu_started = time.perf_counter(), time.process_time()
    until = started + seconds
    await asyncio.gather(*(worker(e, until, True) for e in embedders))
    return time.perf_counter() - started, time.process_time() - cpu_started


# -- embedserve over gRPC -----------------------------------------------------------------------


def grpc_opener(target: str) -> Callable[[], Awaitable[EmbedFn]]:
    async def open_one() -> EmbedFn:
        import grpc

        from embedserve.v1 import embedding_pb2 as pb
        from embedserve.v1 import embedding_pb2_grpc as pb_grpc

        # Its own connection, as a separate client process would have.
        channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        await asyncio.wait_for(channel.channel_ready(), 60)
        stub = pb_grpc.EmbeddingServiceStub(channel)

        async def embed(texts: list[str]) -> np.ndarray:
            response = await stub.Embed(pb.EmbedRequest(inputs=texts), timeout=600)
            return np.asarray([e.values for e in response.embeddings], dtype=np.float32)

        return embed

    return open_one


# -- Infinity over HTTP -------------------------------------------------------------------------


def http_opener(port: int, model: str) -> Callable[[], Awaitable[EmbedFn]]:
    """A minimal keep-alive HTTP/1.1 JSON client on asyncio streams (no extra dependency)."""

    async def open_one() -> EmbedFn:
        streams = [await asyncio.open_connection("127.0.0.1", port)]

        async def post(body: bytes) -> tuple[bytes, bytes]:
            reader, writer = streams[0]
            head = (
                f"POST /embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            return status, await reader.readexactly(length)

        async def embed(texts: list[str]) -> np.ndarray:
            body = json.dumps({"model": model, "input": texts}).encode()
            status, payload = await post(body)
            if not status:
                # uvicorn closes a keep-alive connection idle for 5 s: open a new one, once.
                streams[0] = await asyncio.open_connection("127.0.0.1", port)
                status, payload = await post(body)
            if b" 200 " not in status:
                raise RuntimeError(f"Infinity answered {status!r}: {payload[:300]!r}")
            data = json.loads(payload)["data"]
            return np.asarray([d["embedding"] for d in data], dtype=np.float32)

        return embed

    return open_one


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- one run ------------------------------------------------------------------------------------


async def quality(
    open_one: Callable[[], Awaitable[EmbedFn]], texts: list[str], reference: np.ndarray
) -> float:
    """The lowest cosine between a server's vectors and sentence-transformers' ones."""
    embed = await open_one()
    # One text alone and a few first: an engine that compiles per shape (torch.compile
    # treats a batch of one apart) then does it here, not in a measured window.
    for count in (1, 3):
        await embed(texts[:count])
    return min_cosine(await embed(texts), reference)


@dataclasses.dataclass
class Peer:
    """A started server: its row name, a client opener, and how to stop it."""

    name: str
    opener: Callable[[], Callable[[], Awaitable[EmbedFn]]]
    stop: Callable[[], None]
    fails_softly: bool  # a peer engine's failure is reported; embedserve's ends the run
    # The server's own counters (bench/metrics_server.py's snapshot); embedserve only.
    snapshot: Callable[[], dict[str, Any]] | None = None


def server_figures(
    before: dict[str, Any], after: dict[str, Any], seconds: float
) -> dict[str, float]:
    """What the server did between two snapshots ``seconds`` apart: texts per forward
    pass, the share of padded tokens, and forward passes running at once on average (2
    with two side-by-side passes always busy: the server then waits on its model only)."""
    delta = server_delta(before, after)
    batches, padded = delta["batches"], delta["padded_tokens"]
    return {
        "server_texts_per_pass": delta["sequences"] / batches if batches else 0.0,
        "server_padding": 1 - delta["real_tokens"] / padded if padded else 0.0,
        "server_passes_at_once": delta["model_seconds"] / seconds,
    }


LOADS = (
    ("1 batching client", BATCH_INFLIGHT, BATCH_REQUEST),
    (f"{CLIENTS} one-text clients", CLIENTS, 1),
)


def measure_side_by_side(
    peers: list[Peer],
    corpora: dict[str, list[str]],
    tokens: dict[str, int],
    reference: dict[str, np.ndarray],
    seconds: float,
    failures: dict[str, str],
) -> list[dict[str, Any]]:
    """Each corpus and load on every server in turn, back to back, so that a ratio compares
    windows seconds apart rather than minutes (the machine's speed drifts over minutes).
    The servers all stay up; an idle one used under 1% of a core here. A peer that fails
    is reported in ``failures`` and measured no further."""
    rows: list[dict[str, Any]] = []
    live = list(peers)

    def attempt(peer: Peer, measurement: Coroutine[Any, Any, Any]) -> Any:
        try:
            return asyncio.run(measurement)
        except (RuntimeError, TimeoutError, OSError) as exc:
            if not peer.fails_softly:
                raise
            failures[peer.name] = str(exc)
            log(f"{peer.name} failed: {exc}")
            live.remove(peer)
            return None

    for corpus, texts in corpora.items():
        cosines: dict[str, float] = {}
        for peer in list(live):
            cosine = attempt(peer, quality(peer.opener(), texts[:BATCH_REQUEST], reference[corpus]))
            if cosine is not None:
                cosines[peer.name] = cosine
        for load, workers, per_request in LOADS:
            for peer in list(live):
                before = loadavg()
                tally = Tally(tokens)
                openers = [peer.opener() for _ in range(workers)]
                counters = peer.snapshot() if peer.snapshot else None
                started = time.perf_counter()
                measured = attempt(peer, drive(openers, texts, per_request, seconds, tally))
                if measured is None:
                    continue
                elapsed, cpu = measured
                row: dict[str, Any] = {"engine": peer.name, "corpus": corpus, "load": load}
                row.update(tally.row(elapsed, cpu))
                if peer.snapshot and counters is not None:
                    # Over warm-up and measured seconds alike: every figure is a ratio.
                    wall = time.perf_counter() - started
                    row.update(server_figures(counters, peer.snapshot(), wall))
                row.update(
                    min_cosine=cosines[peer.name], loadavg_before=before, loadavg_after=loadavg()
                )
                log(f"{peer.name} {corpus} {load}: {row['texts_per_s']:.1f} texts/s")
                rows.append(row)
    return rows


def measure_st(
    st: Any,
    corpora: dict[str, list[str]],
    tokens: dict[str, int],
    seconds: float,
    name: str = "sentence-transformers",
    reference: dict[str, np.ndarray] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows for ``st``, and its vectors of each corpus's first texts; with a ``reference``
    (float32's vectors) the rows carry the lowest cosine to it."""
    rows: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    for corpus, texts in corpora.items():
        vectors[corpus] = st.encode(texts[:BATCH_REQUEST], batch_size=64, normalize_embeddings=True)
        before = loadavg()
        tally = Tally(tokens)
        position = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            # The whole corpus per call, as an offline job would encode it: encode() sorts
            # its texts by length before it cuts batches of 64, so batches pad little.
            chunk = texts[position:] + texts[:position]
            position = (position + 1) % len(texts)
            sent = time.perf_counter()
            st.encode(chunk, batch_size=64, normalize_embeddings=True)
            tally.add(chunk, time.perf_counter() - sent)
        row = {"engine": name, "corpus": corpus, "load": "in-process, whole corpus, batch 64"}
        row.update(tally.row(time.perf_counter() - started, time.process_time() - cpu_started))
        cosine = 1.0 if reference is None else min_cosine(reference[corpus], vectors[corpus])
        row.update(min_cosine=cosine, loadavg_before=before, loadavg_after=loadavg())
        log(f"{name} {corpus}: {row['texts_per_s']:.1f} texts/s")
        rows.append(row)
    return rows, vectors


def served_dtype(target: str) -> str:
    from embedserve.client import EmbedClient

    with EmbedClient(target) as client:
        return str(client.model_info().dtype)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    st = {r["corpus"]: r["texts_per_s"] for r in rows if r["engine"] == "sentence-transformers"}
    best_infinity: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["engine"].startswith("Infinity"):
            key = (r["corpus"], r["load"])
            best_infinity[key] = max(best_infinity.get(key, 0.0), r["texts_per_s"])
    for r in rows:
        r["vs_st"] = r["texts_per_s"] / st[r["corpus"]]
        best = best_infinity.get((r["corpus"], r["load"]))
        r["vs_best_infinity"] = r["texts_per_s"] / best if best else None


def per_run(ratios: Sequence[float | None]) -> str:
    """Each run's ratio, in brackets after the median, when there was more than one run."""
    if len(ratios) < 2:
        return ""
    return " (" + ", ".join("-" if v is None else f"{v:.2f}" for v in ratios) + ")"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in report["infinity_packages"].items())
    infinity_packages = f" ({packages})" if packages else ""
    onnx_note = ""
    if any(r["engine"] == "Infinity optimum" for r in report["rows"]):
        onnx_note = (
            " Infinity's `optimum` engine (ONNX Runtime, float32) runs an ONNX export of it "
            "made once by `optimum-cli` from the model folder, with mean pooling and inputs "
            "cut at 256 tokens as sentence-transformers does; Infinity's own graph "
            "optimisation step is skipped (it fails with optimum-onnx 0.1.0), ONNX Runtime's "
            "load-time graph optimisations still apply."
        )
    runs = report.get("runs", 1)
    runs_note = "one run"
    if runs > 1:
        runs_note = (
            f"{runs} runs of every configuration in turn, the servers' order reversed every "
            "other run; figures are medians over the runs, ratios taken within each run (each "
            "run's in brackets), load averages before the first run and after the last"
        )
    command = shlex.join(["bench/peers.py", *report.get("arguments", [])])
    lines = [
        f"## {report.get('section', SECTION)}",
        "",
        f"Measured {report['date']} by `{command}`, {runs_note}, {report['seconds']:.0f} s "
        f"per configuration after a {WARMUP_S:.0f} s warm-up. The servers run side by side "
        "(idle, each used under 1% of a core) and each load is measured on one after the "
        "other, seconds apart, so that ratios compare the machine at the same speed.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs: see the load "
        f"averages); Python {m['python']}, torch {m['torch']}, transformers "
        f"{m['transformers']}, sentence-transformers {m['sentence_transformers']}, "
        f"Infinity {INFINITY_VERSION} in its own virtualenv{infinity_packages}.",
        f"- Model: the packaged all-MiniLM-L6-v2 for every engine, on the CPU.{onnx_note}",
        f"- Corpora: {report['corpora_note']}",
        f"- Loads: sentence-transformers `encode(batch_size=64)` in-process over the whole "
        "corpus per call (it sorts by length first; its latency is per call); for the servers, "
        f"one batching client ({BATCH_REQUEST} texts per request, {BATCH_INFLIGHT} in flight), "
        f"or {CLIENTS} clients with a connection each and one text per request. Latency is per "
        "request. Bench cores: the CPU time of this benchmark's own process over the "
        "measured seconds, in cores: for sentence-transformers the engine itself, for the "
        "servers the clients, which share the machine's cores with the server under test. "
        "Passes (embedserve's own counters, warm-up included): texts per forward pass, the "
        "share of padding in them, and forward passes running at once on average (with two "
        "side-by-side passes, 2.00 means the model never waited for work).",
        "",
        "| corpus | engine | load | texts/s | tokens/s | p50 ms | p99 ms | bench cores "
        "| vs sentence-transformers | vs best Infinity | min cosine | passes: texts / padding "
        "/ at once | loadavg before / after |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["rows"]:
        vs_st = f"{r['vs_st']:.2f}x" + per_run(r.get("runs_vs_st", []))
        vs_inf = ""
        if r["vs_best_infinity"] is not None:
            vs_inf = f"{r['vs_best_infinity']:.2f}x" + per_run(r.get("runs_vs_best_infinity", []))
        passes = ""
        if r.get("server_texts_per_pass") is not None:
            passes = (
                f"{r['server_texts_per_pass']:.1f} / {r['server_padding']:.1%} / "
                f"{r['server_passes_at_once']:.2f}"
            )
        lines.append(
            f"| {r['corpus']} | {r['engine']} | {r['load']} | {r['texts_per_s']:,.1f} | "
            f"{r['tokens_per_s']:,.0f} | {r['p50_ms']:,.1f} | {r['p99_ms']:,.1f} | "
            f"{r['bench_cores']:.2f} | {vs_st} | {vs_inf} | {r['min_cosine']:.4f} | "
            f"{passes} | {r['loadavg_before']} / {r['loadavg_after']} |"
        )
    if report["failures"]:
        lines += ["", "Did not run:", ""]
        lines += [f"- {name}: {reason}" for name, reason in report["failures"].items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--texts", type=int, default=2000, help="texts per corpus")
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat every configuration; medians are reported"
    )
    parser.add_argument("--backends", default="torch", help="embedserve backends, comma-separated")
    parser.add_argument(
        "--infinity-engines",
        default="torch,optimum",
        help=f"comma-separated, of {', '.join(ENGINE_REQUIREMENTS)}; '' skips Infinity",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "embedserve-bench"
    )
    parser.add_argument("--server-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--st-bfloat16", action="store_true", help="also run sentence-transformers in bfloat16"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "peers.json")
    parser.add_argument("--section", default=SECTION, help="title of the section written")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.infinity_engines = [e for e in args.infinity_engines.split(",") if e]
    unknown = [e for e in args.infinity_engines if e not in ENGINE_REQUIREMENTS]
    if unknown:
        parser.error(f"--infinity-engines: unknown engine(s) {', '.join(unknown)}")
    return args


def run_once(
    args: argparse.Namespace,
    model_path: str,
    corpora: dict[str, list[str]],
    tokens: dict[str, int],
    number: int,
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """Every configuration once: rows with their ratios, failures, Infinity's packages.

    sentence-transformers runs first, alone; then every server starts and each
    configuration is measured on all of them back to back, in reverse order on even
    runs, so that neither side is always measured first."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    rows, reference = measure_st(st, corpora, tokens, args.seconds)
    del st
    if args.st_bfloat16:
        import torch

        st = SentenceTransformer(model_path, device="cpu", model_kwargs={"dtype": torch.bfloat16})
        name = "sentence-transformers bfloat16"
        rows += measure_st(st, corpora, tokens, args.seconds, name, reference)[0]
        del st
    failures: dict[str, str] = {}
    infinity_packages: dict[str, str] = {}
    peers: list[Peer] = []
    try:
        start_embedserve(args.backends, args.server_set, peers)
        for engine in args.infinity_engines:
            peer, packages = start_infinity(engine, args.cache_dir, model_path, failures)
            if peer is not None:
                peers.append(peer)
                infinity_packages = packages
        ordered = peers if number % 2 else peers[::-1]
        rows += measure_side_by_side(ordered, corpora, tokens, reference, args.seconds, failures)
    finally:
        for peer in peers:
            peer.stop()
    add_ratios(rows)
    return rows, failures, infinity_packages


def start_embedserve(backends: str, server_set: Sequence[str], peers: list[Peer]) -> None:
    """Start one server per ``--backends`` entry, each added to ``peers`` once ready (so
    that the caller stops those already up if a later one fails)."""
    for entry in [b for b in backends.split(",") if b]:
        entry, *own = entry.split(SETTING)
        entry, compiled = entry.removesuffix(COMPILED), entry.endswith(COMPILED)
        backend, _, dtype = entry.partition(":")
        settings = [f"backend={backend}", *([f"dtype={dtype}"] if dtype else []), *server_set]
        settings += ["torch_compile=true"] if compiled else []
        settings += own
        server = ServerProcess("minilm", "cpu", settings, 0)
        try:
            server.wait_ready()
            picked = "" if dtype else f" (auto: {served_dtype(server.target)})"
        except BaseException:
            server.stop()
            raise
        target = server.target
        name = f"embedserve {backend}{':' + dtype if dtype else ''}{picked}"
        name += ", compiled" if compiled else ""
        name += "".join(f", {setting}" for setting in own)
        opener = functools.partial(grpc_opener, target)
        peers.append(Peer(name, opener, server.stop, False, server.snapshot))
        log(f"{name} ready")


def start_infinity(
    engine: str, cache_dir: Path, model_path: str, failures: dict[str, str]
) -> tuple[Peer | None, dict[str, str]]:
    """Infinity's ``engine`` set up and started, with its packages; or None, the reason
    in ``failures``."""
    name = f"Infinity {engine}"
    server: InfinityServer | None = None
    try:
        started = time.perf_counter()
        python = infinity_python(cache_dir, engine, log)
        location = model_for(engine, python, model_path, cache_dir, log)
        packages = installed_versions(python)
        server = InfinityServer(python, location, engine, free_port())
        server.wait_ready()
    except (SetupError, RuntimeError, TimeoutError, OSError) as exc:
        failures[name] = str(exc)
        log(f"{name} failed: {exc}")
        if server is not None:
            server.stop()
        return None, {}
    log(f"{name} ready after {time.perf_counter() - started:.0f} s (setup and start)")
    port, served = server.port, server.name
    return Peer(name, functools.partial(http_opener, port, served), server.stop, True), packages


SERVER_FIELDS = ("server_texts_per_pass", "server_padding", "server_passes_at_once")


# Figures a combined row takes as the median over runs; ratios are taken within each run
# (side by side, under that run's load) before their median.
MEDIAN_FIELDS = (
    "texts_per_s",
    "tokens_per_s",
    "p50_ms",
    "p99_ms",
    "bench_cores",
    "vs_st",
    "vs_best_infinity",
    *SERVER_FIELDS,
)


# Counts of one run's measurement: a combined row sums them over its runs.
SUMMED_FIELDS = ("requests", "texts", "seconds")


def combine(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per configuration: medians over the runs that measured it, counts summed,
    and each run's texts/s and ratios (``runs_texts_per_s``, ``runs_vs_st``,
    ``runs_vs_best_infinity``)."""
    keyed: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            keyed.setdefault((row["corpus"], row["engine"], row["load"]), []).append(row)
    combined = []
    for same in keyed.values():
        row = dict(same[0])
        for field in MEDIAN_FIELDS:
            values = [r[field] for r in same if r.get(field) is not None]
            row[field] = statistics.median(values) if values else None
        for field in SUMMED_FIELDS:
            row[field] = sum(r[field] for r in same)
        row["min_cosine"] = min(r["min_cosine"] for r in same)
        row["loadavg_before"], row["loadavg_after"] = (
            same[0]["loadavg_before"],
            same[-1]["loadavg_after"],
        )
        row["runs_texts_per_s"] = [r["texts_per_s"] for r in same]
        row["runs_vs_st"] = [r["vs_st"] for r in same]
        row["runs_vs_best_infinity"] = [r["vs_best_infinity"] for r in same]
        combined.append(row)
    return combined


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers import AutoTokenizer

    model_path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    corpora = {
        "short": make_corpus(args.texts, seed=20261202, min_tokens=15, max_tokens=25),
        "mixed": make_corpus(args.texts, seed=20261101),
    }
    tokens: dict[str, int] = {}
    for texts in corpora.values():
        counts = tokenizer(texts)["input_ids"]
        tokens.update((t, min(len(ids), 256)) for t, ids in zip(texts, counts, strict=True))
    means = {c: statistics.mean(tokens[t] for t in texts) for c, texts in corpora.items()}

    runs: list[list[dict[str, Any]]] = []
    failures: dict[str, str] = {}
    infinity_packages: dict[str, str] = {}
    for number in range(1, args.runs + 1):
        log(f"run {number} of {args.runs}")
        rows, failed, packages = run_once(args, model_path, corpora, tokens, number)
        runs.append(rows)
        failures.update({name: f"run {number}: {reason}" for name, reason in failed.items()})
        infinity_packages = packages or infinity_packages
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "section": args.section,
        "arguments": list(sys.argv[1:] if argv is None else argv),
        "machine": machine_info("cpu"),
        "seconds": args.seconds,
        "runs": args.runs,
        "corpora_note": (
            f"`short`: {args.texts} texts of 15 to 25 tokens (mean {means['short']:.1f}); "
            f"`mixed`: {args.texts} texts of 5 to 300 tokens, log-uniform (mean "
            f"{means['mixed']:.1f}, cut at 256); English-like words of MiniLM's vocabulary, "
            "cycled when a configuration needs more."
        ),
        "infinity_packages": infinity_packages,
        "rows": combine(runs),
        "failures": failures,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(portable(json.dumps(report, indent=2)) + "\n")
    section = markdown(report)
    document = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(replace_section(document, args.section, portable(section)))
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
