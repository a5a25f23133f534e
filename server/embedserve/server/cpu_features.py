"""What this CPU's cores can do, read from the kernel's CPU flags (Linux)."""

from __future__ import annotations

import functools

# Instructions that multiply int8 by int8 into int32 without an int16 step that saturates.
_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The flags of the first CPU in /proc/cpuinfo; empty where there is none to read."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:  # not Linux: nothing known
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_has_vnni() -> bool:
    """Whether int8 products run on VNNI (or AMX) rather than AVX2's ``vpmaddubsw``, whose
    int16 sums saturate with full-range int8 weights."""
    return not _VNNI_FLAGS.isdisjoint(cpu_flags())
