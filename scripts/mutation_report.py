"""Turn `mutmut results --all true` output into a markdown table: score per module, survivors."""

from __future__ import annotations

import collections
import datetime
import platform
import sys
from pathlib import Path

KILLED = {"killed", "timeout", "segfault", "suspicious"}


def main(results_file: str, out_file: str) -> None:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors: list[str] = []
    for line in Path(results_file).read_text().splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x")[0].split(".xǁ")[0]
        counts[module][status] += 1
        if status == "survived":
            survivors.append(name)
    lines = [
        "# Mutation testing of the core",
        "",
        f"mutmut against `tests/core` (the fast layer), {datetime.date.today()}, "
        f"{platform.machine()}; `scripts/mutation.sh` reruns it.",
        "",
        "| module | mutants | killed | survived | no tests | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = collections.Counter[str]()
    for module, counter in sorted(counts.items()):
        total.update(counter)
        lines.append(_row(module, counter))
    lines.append(_row("**all**", total))
    lines += ["", "## Surviving mutants", ""]
    lines += [f"- `{name}`" for name in survivors] or ["none"]
    Path(out_file).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 8 + len(counts)]))


def _row(module: str, counter: collections.Counter[str]) -> str:
    killed = sum(counter[s] for s in KILLED)
    survived = counter["survived"]
    untested = counter["no tests"]
    scored = killed + survived + untested
    score = f"{100 * killed / scored:.1f}%" if scored else "-"
    return f"| {module} | {sum(counter.values())} | {killed} | {survived} | {untested} | {score} |"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
