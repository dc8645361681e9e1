"""Threaded HDF5 chunk writing: row blocks gathered into chunk rows, each chunk shuffled, deflated and stored by worker threads."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

import numpy as np

from gmsr_cli.io.codecs import deflate, keep_mantissa_bits, shuffled, worker_pool

# Chunk rows held at once: at least one being filled while another is compressed, and as many more
# as fit in QUEUE_BYTES, so that a whole tile row of the cube (about 14 chunk rows of a 4000 px
# wide photo) can wait for the workers while the caller computes the next one.
MIN_BUFFERS = 2
QUEUE_BYTES = 256 * 2**20


class ChunkRowWriter:
    """Writes (H, W, B) image rows into a chunked h5py dataset with direct chunk writes.

    The dataset is either stored as (H, W, B) with chunks (ch, cw, B), or `transposed` as
    MATLAB's (B, W, H) with chunks (B, cw, ch). Rows are gathered one chunk row (ch rows) at a
    time; each full chunk row's chunks are encoded by `threads` worker threads exactly as HDF5's
    filters would (shuffle when `shuffle`, then deflate at `level`, or stored raw when `level` is
    None) and written with `write_direct_chunk`, while the caller fills the next chunk row. Edge
    chunks are zero-padded to the full chunk size, as HDF5 stores them.

    Errors: a worker's exception is raised on the caller's thread by the next `add` or by
    `finish`; `close` always returns (running chunks end, queued ones are dropped). Memory: two
    chunk rows (2 x ch x W x B values) plus about two chunks per thread.
    """

    def __init__(self, dataset: Any, *, rows: int, cols: int, width: int, bands: int, dtype: np.dtype,
                 level: int | None, shuffle: bool, threads: int, transposed: bool = False,
                 keep_bits: int | None = None):
        self.dataset = dataset
        self.rows, self.cols = int(rows), int(cols)
        self.width, self.bands = int(width), int(bands)
        self.dtype = np.dtype(dtype)
        self.level, self.shuffle, self.keep_bits = level, shuffle, keep_bits
        self.transposed = transposed
        self.pool = worker_pool(threads, "gmsr-chunks")
        row_bytes = self.rows * self.width * self.bands * self.dtype.itemsize
        self.max_buffers = max(MIN_BUFFERS, QUEUE_BYTES // max(1, row_bytes))
        self.lock = threading.Lock()
        self.spare: list[np.ndarray] = []
        self.inflight: deque[tuple[np.ndarray, list[Future]]] = deque()
        self.fill: np.ndarray | None = None
        self.fill_start = 0
        self.fill_count = 0

    def _encode(self, buf: np.ndarray, y0: int, x0: int, count: int) -> None:
        """Worker: the chunk at image row y0, column x0 (count valid rows in buf) to the file."""
        piece = buf[:count, x0 : x0 + self.cols]
        if piece.shape[:2] != (self.rows, self.cols):
            full = np.zeros((self.rows, self.cols, self.bands), dtype=self.dtype)
            full[:count, : piece.shape[1]] = piece
            piece = full
        piece = keep_mantissa_bits(piece, self.keep_bits)
        if self.transposed:
            piece = piece.transpose(2, 1, 0)
            offset: tuple[int, ...] = (0, x0, y0)
        else:
            offset = (y0, x0, 0)
        if self.level is None:
            data: Any = np.ascontiguousarray(piece).tobytes()
        else:
            data = deflate(shuffled(piece) if self.shuffle else np.ascontiguousarray(piece), self.level)
        with self.lock:
            self.dataset.id.write_direct_chunk(offset, data)

    def _take_buffer(self) -> np.ndarray:
        if self.spare:
            return self.spare.pop()
        if self.inflight and all(future.done() for future in self.inflight[0][1]):
            return self._wait_oldest()  # reuse a finished buffer rather than allocate another
        if len(self.inflight) < self.max_buffers:
            return np.empty((self.rows, self.width, self.bands), dtype=self.dtype)
        return self._wait_oldest()

    def _wait_oldest(self) -> np.ndarray:
        buf, futures = self.inflight.popleft()
        for future in futures:
            future.result()  # a worker's exception is raised here, on the caller's thread
        return buf

    def _submit(self) -> None:
        buf, y0, count = self.fill, self.fill_start, self.fill_count
        assert buf is not None
        futures = [self.pool.submit(self._encode, buf, y0, x0, count) for x0 in range(0, self.width, self.cols)]
        self.inflight.append((buf, futures))
        self.fill, self.fill_start, self.fill_count = None, y0 + count, 0
        for _, submitted in self.inflight:  # fail early when any chunk already failed
            for future in submitted:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]

    def add(self, block: np.ndarray) -> None:
        """Rows (h, W, B) of `dtype`, continuing where the previous block ended."""
        i = 0
        while i < block.shape[0]:
            if self.fill is None:
                self.fill = self._take_buffer()
            n = min(self.rows - self.fill_count, block.shape[0] - i)
            self.fill[self.fill_count : self.fill_count + n] = block[i : i + n]
            self.fill_count += n
            i += n
            if self.fill_count == self.rows:
                self._submit()

    def finish(self) -> None:
        """Store the last, partial chunk row and wait for every chunk; raises a worker's error."""
        if self.fill_count:
            self._submit()
        while self.inflight:
            self.spare.append(self._wait_oldest())

    def close(self) -> None:
        """Stop the workers (running chunks end first). Call before closing the file."""
        self.pool.shutdown(wait=True, cancel_futures=True)
