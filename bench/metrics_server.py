"""Run one embedserve server in this process and report its batching metrics on request.

The throughput benchmark starts this script as a separate process, so that the
load-generating client never shares the server's interpreter (and its GIL).

    python bench/metrics_server.py --model minilm --device cpu --port 0 \
        [--torch-threads N] [--set max_wait_ms=5 --set sort_window=512 ...] \
        [--metrics-out metrics.json]

Once the server reports SERVING, one line ``READY {json}`` goes to stdout with
the bound port and the effective settings. Then each line read from stdin is a
command:

- ``snapshot``: print one JSON line with the server's counters since start
  (batches, sequences, real and padded tokens, model seconds) and the CPU
  seconds used so far by each thread of this process;
- ``quit`` (or end of input): stop the server and exit.

SIGTERM and SIGINT stop the server too. With ``--metrics-out`` the last
snapshot is also written to that file at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip().replace("-", "_"), value.strip()


def build_settings(model: str, device: str, port: int, assignments: list[tuple[str, str]]) -> Any:
    from embedserve.server.config import Settings

    kinds = {f.name: type(getattr(Settings(), f.name)) for f in dataclasses.fields(Settings)}
    overrides: dict[str, Any] = {
        "model": model,
        "device": device,
        "port": port,
        "log_level": "WARNING",
    }
    if "http_port" in kinds:
        overrides["http_port"] = 0  # gRPC only: several bench servers may run at once
    if "data_dir" in kinds:
        # A private vector-store folder: several bench servers may run at once, and the
        # repository's ./data may be held by someone else's server.
        overrides["data_dir"] = tempfile.mkdtemp(prefix="embedserve-bench-")
    for name, raw in assignments:
        if name not in kinds:
            raise SystemExit(f"metrics_server: unknown setting {name!r}")
        if kinds[name] is bool:
            overrides[name] = raw.lower() in {"1", "true", "yes", "on"}
        else:
            overrides[name] = kinds[name](raw)
    return Settings(**overrides)


def _thread_names() -> dict[int, str]:
    return {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) per thread of this process, grouped by name.

    Python threads carry their Python name; native threads (torch's OpenMP
    workers, gRPC's pollers) are named ``native:<comm>``.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    names = _thread_names()
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        tid = int(task.name)
        name = names.get(tid) or f"native:{comm}"
        out[name] = round(out.get(name, 0.0) + seconds, 3)
    return out


def snapshot(server: Any) -> dict[str, Any]:
    metrics = server.metrics
    registry = metrics.registry

    def sample(name: str) -> float:
        value = registry.get_sample_value(name)
        return 0.0 if value is None else float(value)

    usage = os.times()
    return {
        "time": time.monotonic(),
        "batches": int(sample("embedserve_batch_size_count")),
        "sequences": int(sample("embedserve_batch_size_sum")),
        "real_tokens": int(sample("embedserve_tokens_total")),
        "padded_tokens": int(sample("embedserve_padded_tokens_total")),
        "model_seconds": sample("embedserve_batch_seconds_sum"),
        "process_cpu_seconds": usage.user + usage.system,
        "threads": thread_cpu_seconds(),
    }


async def serve(args: argparse.Namespace) -> None:
    import torch

    from embedserve.server.app import EmbedServer

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.interop_threads:
        torch.set_num_interop_threads(args.interop_threads)
    settings = build_settings(args.model, args.device, args.port, args.set)
    server = EmbedServer(settings)
    port = await server.start()
    await server.wait_ready()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    def reply(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def handle(command: str) -> None:
        if command == "snapshot":
            reply(json.dumps(snapshot(server)))
        elif command in ("quit", ""):
            stopping.set()
        else:
            reply(json.dumps({"error": f"unknown command {command!r}"}))

    def read_commands() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(handle, line.strip())
        loop.call_soon_threadsafe(handle, "")

    threading.Thread(target=read_commands, name="bench-commands", daemon=True).start()
    assert server.embedder is not None  # SERVING
    ready = {
        "port": port,
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        # Effective values: a 0 in Settings means "pick for the device".
        "settings": dataclasses.asdict(settings)
        | dataclasses.asdict(server.embedder.batcher.limits),
    }
    reply("READY " + json.dumps(ready))
    await stopping.wait()
    final = snapshot(server)
    if args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps(final, indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(Exception):
        await server.stop(grace=1.0)
    if "data_dir" in dataclasses.asdict(settings):
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads in the server process (0: torch's choice)",
    )
    parser.add_argument("--interop-threads", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        type=parse_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="a server setting, e.g. max_wait_ms=5",
    )
    parser.add_argument("--metrics-out", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="server %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
