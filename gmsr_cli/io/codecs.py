"""Chunk encoding for the cube writers: byte shuffle, deflate (ISA-L when installed), mantissa rounding, worker threads."""

from __future__ import annotations

import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

try:  # ISA-L's deflate is 5-10x faster than zlib at its low levels and writes the same format.
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _isal = None

# What every value a writer stores is, for the labels in the files (HDF5 attribute, TIFF and
# ENVI descriptions). The network's cubes run a little below 0 and above 1 (about -0.03..1.05).
VALUES_LABEL = ("relative reflectance (1 = a white reference; reconstructed values may fall "
                "slightly outside [0, 1])")
# How much lower than the caller's the compression workers' scheduling priority is (Linux nice
# levels): they fill the cores the network leaves idle (about 12% of two cores) instead of taking
# them from its parallel loops, whose every thread must finish before the next step.
WORKER_NICE = 10
_MANTISSA_BITS = {2: 10, 4: 23}
_UINT = {2: np.uint16, 4: np.uint32}


def default_threads() -> int:
    """Worker threads for chunk compression: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def worker_pool(threads: int | None, name: str) -> ThreadPoolExecutor:
    """The compression workers of a cube writer: ``threads`` of them (None: default_threads()),
    each at WORKER_NICE below the caller's priority."""
    threads = default_threads() if threads is None else int(threads)
    return ThreadPoolExecutor(max(1, threads), thread_name_prefix=name, initializer=_lower_priority)


def _lower_priority() -> None:
    """Worker thread start: lower this thread's priority by WORKER_NICE (Linux: per thread)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE))
    except (AttributeError, OSError):  # not Linux, or not allowed: the default priority works too
        pass


def deflate(data: Any, level: int) -> bytes:
    """A zlib stream (RFC 1950: what HDF5's gzip filter, TIFF Deflate and every inflate read)
    of `data` (bytes or a C-contiguous array). Levels 1-3 use ISA-L when installed (its levels
    1-3, faster than zlib's 1 at about the same size); 0 stores; 4-9 are zlib's levels.
    Releases the GIL, so several threads compress at once."""
    level = int(level)
    if not 0 <= level <= 9:
        raise ValueError(f"deflate level must be 0-9, got {level}")
    if _isal is not None and 1 <= level <= 3:
        return _isal.compress(data, level)
    return zlib.compress(data, level)


def deflate_backend() -> str:
    """"isal" or "zlib": which library deflate() uses for levels 1-3."""
    return "isal" if _isal is not None else "zlib"


def shuffled(chunk: np.ndarray) -> np.ndarray:
    """HDF5's shuffle filter: byte k of every value together, for k = 0..itemsize-1 (C order).
    `chunk`: any array whose last axis is contiguous (a slice of a larger block is read in
    place); returns a new (itemsize, *chunk.shape) uint8 array."""
    size = chunk.dtype.itemsize
    if chunk.strides[-1] != size:
        chunk = np.ascontiguousarray(chunk)
    raw = chunk.view(np.uint8)
    out = np.empty((size,) + chunk.shape, dtype=np.uint8)
    for k in range(size):
        out[k] = raw[..., k::size]
    return out


def keep_mantissa_bits(block: np.ndarray, bits: int | None) -> np.ndarray:
    """Round float values to `bits` explicit mantissa bits (round to nearest, ties away from
    zero in magnitude), so that they compress much better; NaN and infinities are kept.

    The relative error of every normal value (|x| >= 1.2e-38) is at most 2**-(bits + 1) (bits=12:
    1.2e-4; subnormal values, which have fewer bits, are off by less than 2**-(126 + bits));
    None, or at least the type's own mantissa (23 for float32, 10 for float16), keeps the values
    exactly. Returns a new array of the same dtype (or `block` itself when nothing changes)."""
    if bits is None:
        return block
    size = block.dtype.itemsize
    full = _MANTISSA_BITS.get(size)
    if block.dtype.kind != "f" or full is None:
        raise ValueError(f"mantissa rounding needs float16 or float32 values, got {block.dtype}")
    bits = int(bits)
    if bits < 1:
        raise ValueError(f"keep at least 1 mantissa bit, got {bits}")
    if bits >= full:
        return block
    utype = _UINT[size]
    drop = full - bits
    ints = np.ascontiguousarray(block).view(utype)
    half = utype(1 << (drop - 1))
    mask = utype(((1 << (8 * size)) - 1) ^ ((1 << drop) - 1))
    rounded = ((ints + half) & mask).view(block.dtype)
    # NaN and infinities keep their bits; a finite value that rounding would carry to
    # infinity keeps its own value.
    return np.where(np.isfinite(rounded) & np.isfinite(block), rounded, block)
