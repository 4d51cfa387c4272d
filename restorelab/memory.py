"""Process memory helpers (glibc malloc tuning for loops over large arrays)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator

__all__ = ["keep_freed_memory"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
#: Where glibc's own adaptive thresholds end up after freeing large blocks (its ceiling,
#: ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit, and twice that for trimming). Setting a threshold
#: turns the adaptation off for good, so these are what is restored on exit: the fixed 128 KiB
#: defaults would map and unmap every large array afresh from then on.
_RESTORED_MMAP_THRESHOLD = 32 * 2**20
_RESTORED_TRIM_THRESHOLD = 64 * 2**20


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018  (glibc only: musl has no mallopt)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def keep_freed_memory(largest_bytes: int = 128 * 2**20) -> Iterator[None]:
    """Let glibc reuse freed large blocks instead of returning them to the kernel, for a while.

    glibc serves blocks above 128 KiB with fresh ``mmap`` pages and unmaps them on ``free``,
    so a loop that allocates full-size image arrays has the kernel map and zero every page
    again for every image (about a fifth of the CPU time of curation's analysis, as system
    time). Inside this context blocks up to ``largest_bytes`` come from the heap and freed
    memory is kept for reuse; on exit the unused part is given back (``malloc_trim``) and
    the thresholds are set to where glibc's adaptive ones settle for large arrays. Peak memory
    does not grow: the same blocks are reused. A no-op where the C library is not glibc.
    """
    libc = _libc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, int(largest_bytes))
    libc.mallopt(_M_TRIM_THRESHOLD, 4 * int(largest_bytes))
    libc.mallopt(_M_TOP_PAD, int(largest_bytes) // 2)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _RESTORED_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _RESTORED_TRIM_THRESHOLD)
        libc.mallopt(_M_TOP_PAD, 0)
        libc.malloc_trim(0)
