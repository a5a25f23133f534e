"""``keep_freed_memory``: glibc's allocator keeps what forward passes free, for the next.

Every forward pass allocates its activations anew (megabytes each) and frees them at
its end. glibc's defaults hand much of that back to the kernel (it trims the heap
once more than twice the last large block is free at its top, and maps larger blocks
apart), so the next pass takes it back page by page: thousands of page faults per
pass, about 3% of a pass's CPU time in the kernel on MiniLM (docs/benchmarks.md,
"Freed memory kept"). Raising both thresholds once at start keeps the heap at its
peak instead; blocks over ``MMAP_THRESHOLD`` (a long ModernBERT input's) are still
mapped apart and handed back when freed.

The process's own ``MALLOC_*`` variables or glibc tunables win: whoever set them
chose (``MALLOC_MMAP_THRESHOLD_=131072`` keeps resident memory flat, README "Memory").
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks from this size up are mapped apart: glibc's largest allowed value on 64 bits.
MMAP_THRESHOLD = 32 << 20
# Free memory at a heap's top beyond this goes back to the kernel: the heap keeps the
# activations of the largest passes below it.
TRIM_THRESHOLD = 1 << 30

# Variables by which the user tunes glibc's allocator already.
ALLOCATOR_VARIABLES = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the allocator is another (musl, macOS)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> bool:
    """Raise glibc's trim and mmap thresholds; whether they were set.

    False where the allocator is not glibc's (no ``mallopt``) or where the process's
    environment tunes it already."""
    environ = os.environ if environ is None else environ
    tuned = [name for name in ALLOCATOR_VARIABLES if name in environ]
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        tuned.append("GLIBC_TUNABLES")
    if tuned:
        log.info("allocator left as %s sets it", ", ".join(tuned))
        return False
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
