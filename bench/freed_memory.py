"""Freed memory kept: forward passes with and without ``keep_freed_memory``, per pass.

Each round runs two child processes one after the other, in alternating order: one
that calls ``embedserve.server.allocator.keep_freed_memory`` before it loads the
model and one that leaves glibc's defaults. Each child loads the packaged MiniLM
with the server's own ``EncoderModel`` and runs the same batches (short queries,
mixed lengths, a few long texts) once to warm up, then ``--repeat`` times measured,
on ``--side`` threads side by side with one torch thread each, as the server runs
two passes on 2 cores under load. Reported per configuration: the median over the
rounds of tokens/s, user and kernel CPU milliseconds per pass, minor page faults
per pass and resident memory (peak, and after the last pass); and the ratios
kept / default of tokens/s and default / kept of CPU time taken within each round,
then their medians.

    .venv/bin/python bench/freed_memory.py [--rounds 5] [--repeat 3] [--side 2]
        [--out docs/benchmarks.md] [--json bench/results/freed_memory.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from compiled_pass import machine_line
from embedding_throughput import machine_info, publish
from peers import loadavg

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "Freed memory kept (CPU)"
MODES = ("default", "kept")
# (texts, fewest tokens, most tokens) of each batch, as the batcher cuts them.
BATCHES = ((40, 15, 25), (64, 15, 25), (16, 60, 64), (20, 5, 120), (8, 200, 256), (4, 5, 10))


def child(mode: str, side: int, repeat: int) -> dict[str, Any]:
    """One configuration's passes in this process; its figures."""
    from embedserve.server.allocator import keep_freed_memory
    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings
    from embedserve.server.pass_threads import on_threads
    from embedserve.server.windows import Window

    kept = keep_freed_memory() if mode == "kept" else False
    model = EncoderModel.load(ModelSettings(model="minilm", device="cpu", dtype="float32"))
    compute = on_threads(model.compute, 1)
    rng = random.Random(0)
    batches = [
        [
            Window(tuple(rng.randint(2000, 20000) for _ in range(rng.randint(low, high))))
            for _ in range(count)
        ]
        for count, low, high in BATCHES
    ]
    work = batches * side  # each side thread runs every batch

    def run_all() -> None:
        with ThreadPoolExecutor(side) as pool:
            list(pool.map(compute, work))

    run_all()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(repeat):
        run_all()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    passes = repeat * len(work)
    return {
        "kept": kept,
        "tokens_per_s": repeat * sum(len(w.ids) for b in work for w in b) / wall,
        "user_ms_per_pass": 1000 * (after.ru_utime - before.ru_utime) / passes,
        "sys_ms_per_pass": 1000 * (after.ru_stime - before.ru_stime) / passes,
        "faults_per_pass": (after.ru_minflt - before.ru_minflt) / passes,
        "peak_rss_mb": after.ru_maxrss / 1024,  # kilobytes on Linux
        "end_rss_mb": resident_mb(),
    }


def resident_mb() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def run_child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--side", str(args.side)]
    command += ["--repeat", str(args.repeat)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rounds: list[dict[str, dict[str, Any]]] = []
    before = loadavg()
    for number in range(args.rounds):
        order = MODES if number % 2 == 0 else MODES[::-1]
        rounds.append({mode: run_child(mode, args) for mode in order})
        print(f"round {number + 1}: {json.dumps(rounds[-1])}", file=sys.stderr, flush=True)
    rows = {
        mode: {key: statistics.median(r[mode][key] for r in rounds) for key in rounds[0][mode]}
        for mode in MODES
    }

    def cpu(figures: dict[str, Any]) -> float:
        return float(figures["user_ms_per_pass"] + figures["sys_ms_per_pass"])

    speed = [r["kept"]["tokens_per_s"] / r["default"]["tokens_per_s"] for r in rounds]
    cpu_ratios = [cpu(r["default"]) / cpu(r["kept"]) for r in rounds]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info("cpu"),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "arguments": sys.argv[1:],
        "side": args.side,
        "repeat": args.repeat,
        "rounds": rounds,
        "medians": rows,
        "speed_ratios": speed,
        "cpu_ratios": cpu_ratios,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## {SECTION}",
        "",
        f"Measured {report['date']} by `bench/freed_memory.py`: the packaged MiniLM in "
        "float32 through the server's own `EncoderModel.compute`, in a child process per "
        "configuration and round (glibc's allocator defaults, or `keep_freed_memory` called "
        f"first), {len(report['rounds'])} rounds in alternating order; each child runs "
        f"{len(BATCHES)} batches ({', '.join(f'{n} x {lo}-{hi}' for n, lo, hi in BATCHES)} "
        f"tokens) on {report['side']} threads side by side with one torch thread each, "
        f"{report['repeat']} times after one warm-up. Medians over the rounds; ratios "
        "taken within each round.",
        "",
        machine_line(report),
        "",
        "| allocator | tokens/s | user CPU ms per pass | kernel CPU ms per pass "
        "| page faults per pass | peak RSS MB | RSS at the end MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        row = report["medians"][mode]
        lines.append(
            f"| {mode} | {row['tokens_per_s']:,.0f} | {row['user_ms_per_pass']:.1f} | "
            f"{row['sys_ms_per_pass']:.2f} | {row['faults_per_pass']:,.0f} | "
            f"{row['peak_rss_mb']:,.0f} | {row['end_rss_mb']:,.0f} |"
        )
    each = ", ".join(f"{x:.2f}" for x in report["speed_ratios"])
    cpu_each = ", ".join(f"{x:.2f}" for x in report["cpu_ratios"])
    lines += [
        "",
        f"Kept / default, tokens/s: {statistics.median(report['speed_ratios']):.2f}x "
        f"(each round {each}); CPU time per pass, default / kept: "
        f"{statistics.median(report['cpu_ratios']):.2f}x (each round {cpu_each}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", type=int, default=2, help="passes side by side")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(BENCH_DIR.parent / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=str(BENCH_DIR / "results" / "freed_memory.json"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.side, args.repeat)))
        return 0
    report = measure(args)
    publish(SECTION, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
