"""A short request behind a large one: the latency of one short text sent a second into
another caller's 400 texts of 200 words, on running servers (two builds side by side,
each started by hand), trials alternating between them.

    .venv/bin/python bench/request_turns.py before=127.0.0.1:50051 after=127.0.0.1:50061
        [--trials 3] [--out docs/benchmarks.md] [--json bench/results/request_turns.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from embedding_throughput import publish
from hybrid_search import cpu_machine

from embedserve.client import EmbedClient

TITLE = "A short request behind a large one (CPU)"
LARGE = [" ".join(f"word{(i * 7 + j) % 997}" for j in range(200)) for i in range(400)]
SHORT = "where is the nearest train station"
HEAD_START_S = 1.0


def trial(target: str) -> dict[str, float]:
    timings: dict[str, float] = {}

    def large() -> None:
        began = time.perf_counter()
        with EmbedClient(target) as client:
            client.embed(LARGE, batch_size=len(LARGE))  # one request
        timings["large_s"] = time.perf_counter() - began

    caller = threading.Thread(target=large)
    caller.start()
    time.sleep(HEAD_START_S)
    with EmbedClient(target) as client:
        began = time.perf_counter()
        client.embed([SHORT])
        timings["short_s"] = time.perf_counter() - began
    caller.join()
    return timings


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"## {TITLE}",
        "",
        f"{report['date']}; {machine['cpu']}, {machine['cores']} cores, load before "
        f"{machine['load_before']}. `bench/request_turns.py`: packaged MiniLM; one caller "
        f"sends {len(LARGE)} texts of 200 words in one Embed request, another one short "
        f"text {HEAD_START_S:.0f} s later; medians of {report['trials']} trials, "
        "alternating between the servers.",
        "",
        "| server | short request s | large request s |",
        "| --- | ---: | ---: |",
    ]
    for label, row in report["results"].items():
        lines.append(f"| {label} | {row['short_s']:.2f} | {row['large_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("servers", nargs="+", help="LABEL=HOST:PORT of a running server")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--json", help="JSON results file")
    args = parser.parse_args(argv)
    servers = dict(server.split("=", 1) for server in args.servers)
    machine = cpu_machine()
    rows: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
    for _ in range(args.trials):
        for label, target in servers.items():
            rows[label].append(trial(target))
            print(label, rows[label][-1], flush=True)
    results = {
        label: {key: statistics.median(t[key] for t in timings) for key in ("short_s", "large_s")}
        for label, timings in rows.items()
    }
    report = {
        "date": dt.date.today().isoformat(),
        "machine": machine,
        "trials": args.trials,
        "results": results,
        "runs": rows,
    }
    publish(TITLE, markdown(report), report, args.json, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
