"""allocator.keep_freed_memory: freed activations stay in the process for the next pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embedserve.server.allocator import glibc_mallopt, keep_freed_memory

# One "pass": ten 8 MB buffers live at once, written through, then all freed; the page
# faults of the later passes are counted (the first one's are the heap's growth).
PASSES = """
import resource, sys
import numpy as np
from embedserve.server.allocator import keep_freed_memory
kept = keep_freed_memory({}) if sys.argv[1] == "keep" else False
def one_pass():
    buffers = [np.ones(1 << 20) for _ in range(10)]
    return sum(float(b[-1]) for b in buffers)
one_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    one_pass()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_over_five_passes(mode: str) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", PASSES, mode], capture_output=True, text=True, check=True
    )
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(glibc_mallopt() is None, reason="the allocator is not glibc's")
def test_kept_memory_spares_the_page_faults_of_every_pass() -> None:
    kept, kept_faults = faults_over_five_passes("keep")
    plain, plain_faults = faults_over_five_passes("default")
    assert kept and not plain
    # glibc's defaults hand part of each pass's 80 MB back and fault it in again (25,575
    # faults over five passes here: 20 MB per pass); kept, the heap is reused as it is.
    assert plain_faults > 5 * 2_000
    assert kept_faults < plain_faults / 20


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"MALLOC_TRIM_THRESHOLD_": "0"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
    ],
)
def test_the_processes_own_allocator_settings_win(environ: dict[str, str]) -> None:
    assert keep_freed_memory(environ) is False
