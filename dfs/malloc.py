"""glibc malloc tuning shared by the processes that move chunk-sized buffers (node, client).

Every chunk a node receives, and every chunk a client downloads, is read into a new buffer
of up to MAX_CHUNK_SIZE bytes. glibc's defaults hand memory of that size back to the kernel
when it is freed, so the next buffer lands in fresh pages the kernel must fault in and zero.
``keep_freed_buffers`` keeps such memory in the heap instead. Only ctypes and os: no dfs
imports, so any entry point may call it first thing.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_FREED = 128 << 20
"""Freed heap memory a process keeps instead of giving back to the kernel (M_TRIM_THRESHOLD)."""
MMAP_ABOVE = 32 << 20
"""Allocations from this size on get their own mapping (M_MMAP_THRESHOLD; glibc's ceiling)."""


def keep_freed_buffers() -> bool:
    """Let chunk-sized buffers reuse freed heap memory instead of fresh pages.

    glibc's trim threshold is twice a dynamic mmap threshold that stays at a few MiB, so a
    freed chunk buffer goes back to the kernel: measured on a node ~1 fault per 4 KiB
    received (~260,000 per GiB, system CPU of every copy, twice on RF 2). Keeping up to
    ``KEEP_FREED`` bytes of freed heap cut that to ~50,000 per GiB. Peak memory does not
    grow (the buffers existed at the peak anyway); it is simply not returned after a burst.
    Operators' own ``MALLOC_*_`` settings win; a libc without ``mallopt`` (not glibc) is
    left as it is. True when the settings were applied."""
    if any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    )
