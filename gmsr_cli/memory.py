"""Process-wide memory allocator settings for the gmsr application (not applied by the library)."""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_malloc() -> bool:
    """glibc only: serve large blocks from the heap and keep freed memory for reuse, instead of a
    fresh mmap per block over 32 MB whose every 4 KB page faults on first touch (about 400 000
    faults, 0.8 s, per 512x512 forward pass on 2 cores; docs/performance.md). Process-wide, so it
    belongs to an application's start: `gmsr` calls it; a library user may. Returns whether applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
