"""A file object for C libraries (h5py) that keeps write failures away from them and reports them to us.

When a write fails inside HDF5 (no space left, an I/O error), HDF5's metadata cache is left
half-flushed: closing the file fails again and h5py then crashes the interpreter while freeing
its objects (segmentation fault, exit 139). Handed to ``h5py.File`` instead of a path, a
GuardedFile records the first failing write, tells the library that it succeeded, and drops
every later write: the library stays consistent and closes cleanly, and the writer raises the
recorded error itself (``raise_failure``) as soon as the library call returns. The file's
contents are garbage from then on, which does not matter: it is a temporary that is deleted.
"""

from __future__ import annotations

import os
from pathlib import Path


class GuardedFile:
    """A binary read/write file (created or truncated) with the methods h5py's ``fileobj`` driver
    uses. After a failed write, ``failure`` holds the OSError and writes are discarded."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # Unbuffered: a buffered file that failed to flush fails again on every later seek.
        self._fh = open(self.path, "w+b", buffering=0)
        self.failure: OSError | None = None

    def _record(self, exc: OSError) -> None:
        if self.failure is None:
            self.failure = exc

    def raise_failure(self) -> None:
        """Raise the first write failure, if there was one."""
        if self.failure is not None:
            raise self.failure

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def readinto(self, buffer) -> int:
        return self._fh.readinto(buffer)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n, done = len(view), 0
        if self.failure is None:
            try:
                while done < n:  # a raw write may be short
                    done += self._fh.write(view[done:])
                return n
            except OSError as exc:
                self._record(exc)
        self._fh.seek(n - done, os.SEEK_CUR)
        return n

    def truncate(self, size: int | None = None) -> int:
        if self.failure is None:
            try:
                return self._fh.truncate(size)
            except OSError as exc:
                self._record(exc)
        return self._fh.tell() if size is None else size

    def flush(self) -> None:
        pass  # unbuffered: every write has reached the OS already

    def close(self) -> None:
        """Close the file; a failure on closing is recorded, not raised."""
        if self._fh.closed:
            return
        try:
            self._fh.close()
        except OSError as exc:
            self._record(exc)

    @property
    def closed(self) -> bool:
        return self._fh.closed


def close_hdf5(file, sink: GuardedFile, pipeline=None) -> None:
    """Close what an HDF5-based writer holds, in order, whatever fails: its chunk pipeline (if
    any), the h5py ``file`` written through ``sink``, then ``sink``; then raise the first write
    failure the sink recorded (OutputError / DiskFullError)."""
    try:
        if pipeline is not None:
            pipeline.close()
    finally:
        try:
            file.close()
        finally:
            sink.close()
    sink.raise_failure()

